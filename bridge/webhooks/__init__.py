"""Post-call webhooks: a signed JSON document per call and receiver, delivered with retries.

* :mod:`bridge.webhooks.signature` — the ``Bridge-Signature`` header (pure);
* :mod:`bridge.webhooks.payload` — the ``call.ended`` document (pure);
* :mod:`bridge.webhooks.backoff` — when the next attempt is due (pure);
* :mod:`bridge.webhooks.delivery` — the worker: enqueue at call end, send, retry;
* :mod:`bridge.webhooks.admin` — ``GET /admin/webhooks/deliveries`` and retry.

The deliveries themselves live in the store (:mod:`bridge.store.deliveries`).
"""
