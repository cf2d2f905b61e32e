"""Federated adaptation on Flower: ClientApp/ServerApp, partitions, guarded strategies,
checkpoints and the Deployment Engine runner. Only this package imports flwr."""
