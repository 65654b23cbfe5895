"""Google Drive API v3 as the guide uses it: each (user, app)'s hidden ``appDataFolder``, the
user's My Drive, uploads (simple, multipart, resumable) and Drive's errors. Routes in
:mod:`.routes`."""
