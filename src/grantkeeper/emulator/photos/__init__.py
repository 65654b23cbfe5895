"""Google Photos Library API v1 under Google's 2025 rules (an app sees only what it created):
uploads, media items, albums, baseUrl renditions, and its discovery document. Routes in
:mod:`.routes`."""
