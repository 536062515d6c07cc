"""Consent that proves itself: a one-time challenge (``challenge``), and the checks a consent video must pass
against it (``check.examine_consent_video``: the face through every frame and its identity a few times a second
(``observe``), the actions in order from a moving face (``liveness``), the sentence said (``speech``), the marks it
carries). The service decides on the facts, records the consent or the refusal, and keeps the audit trail.

Nothing is imported here: ``xp_sdk.consent.challenge`` stays as light as the transports that name its types.
"""
