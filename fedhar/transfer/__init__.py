"""Transfer across datasets and to devices: leave-one-dataset-out federated rounds with few-shot
adaptation (:mod:`~fedhar.transfer.lodo`) and on-device personalisation
(:mod:`~fedhar.transfer.personalize`), sharing one adaptation routine (:mod:`~fedhar.transfer.adapt`)."""
