from django.conf import settings
from django.db import models


class GoogleAccount(models.Model):
    """The verified Google ``sub`` linked to one of the site's users (at most one each way)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="google"
    )
    sub = models.CharField(max_length=255, unique=True)
