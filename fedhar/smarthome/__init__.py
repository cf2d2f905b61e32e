"""The smart-home study: event text for an LLM backbone, zero-shot scoring and the per-home comparison.

Serialisation and tokenisation live with the data (:mod:`fedhar.data.smarthome`); this package holds
what runs on top of them: ``zero_shot`` scores activity names by the LLM's likelihood, ``study`` runs
the per-home comparison and ``federated`` the cross-home federation.
"""
