"""Password accounts as the site always had them, and "Sign in with Google" from the mobile app:
it POSTs Google's server auth code to /auth/google. The verified ``sub`` is the only identity
trusted; an email is never enough to take over an account."""

import json

from django.contrib.auth import authenticate, login
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from accounts.keeper import get_keeper
from accounts.models import GoogleAccount
from grantkeeper import SignInCandidate, SignInRefused


@csrf_exempt
@require_POST
def register(request: HttpRequest) -> JsonResponse:
    body = json.loads(request.body)
    User.objects.create_user(body["email"], email=body["email"], password=body["password"])
    return JsonResponse({"ok": True}, status=201)


@csrf_exempt
@require_POST
def login_view(request: HttpRequest) -> JsonResponse:
    body = json.loads(request.body)
    user = authenticate(request, username=body["email"], password=body["password"])
    if user is None:
        return JsonResponse({"error": "wrong email or password"}, status=401)
    login(request, user)
    return JsonResponse({"user_id": user.pk})


@csrf_exempt  # an API for the mobile app: the custom header below is the CSRF defence
@require_POST
def google_sign_in(request: HttpRequest) -> JsonResponse:
    if "X-Requested-With" not in request.headers:  # Google's guide: a custom header
        return JsonResponse({"error": "X-Requested-With header required"}, status=403)
    body = json.loads(request.body)
    current = request.user.pk if request.user.is_authenticated else None

    def decide(candidate: SignInCandidate) -> None:
        # Runs before grantkeeper stores anything, in a worker thread: its own connection.
        try:
            owner = GoogleAccount.objects.filter(sub=candidate.sub).first()
            if owner and current and owner.user_id != current:
                raise SignInRefused("This Google account is linked to another user.")
            if current and not owner and GoogleAccount.objects.filter(user_id=current).exists():
                raise SignInRefused("Your account is linked to another Google account.")
            if owner or current:
                return  # a returning user, or "connect Google" while logged in
            taken = User.objects.filter(email__iexact=candidate.email, google__isnull=True)
            if candidate.email and taken.exists():
                raise SignInRefused(
                    "An account with this email exists: log in with your password, then "
                    "connect Google."
                )
        finally:
            connection.close()

    try:
        result = get_keeper().sign_in(body["code"], body.get("platform", "ios"), decide=decide)
    except SignInRefused as refused:
        return JsonResponse({"error": refused.code, "detail": refused.message}, status=403)
    with transaction.atomic():
        link = GoogleAccount.objects.select_related("user").filter(sub=result.sub).first()
        if link is not None:
            user = link.user
        else:
            user = (
                request.user
                if current
                else User.objects.create_user(
                    f"google:{result.sub}", email=result.user.get("email") or ""
                )
            )
            GoogleAccount.objects.create(user=user, sub=result.sub)
    # The site's own session, as after a password login.
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    return JsonResponse({"user_id": user.pk, "offline": result.offline})
