"""The app's accounts: Django's own users and sessions, plus the Google account linked to each."""
