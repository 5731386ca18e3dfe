"""Training and evaluation data: the sets' readers and crop cache (``sets``) and the cached
crops' geometry (``views``). Used by ``evaluate`` and ``train``; imports neither."""
