"""Google Photos Picker API v1 (``photospicker.googleapis.com``): picking sessions, the items a
user picked with their base URLs, the page behind ``pickerUri``, its control calls and its
discovery document. Routes in :mod:`.routes`, :mod:`.page` and :mod:`.control`."""
