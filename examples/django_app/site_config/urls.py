from accounts import views
from django.urls import path

urlpatterns = [
    path("register", views.register),
    path("login", views.login_view),
    path("auth/google", views.google_sign_in),
]
