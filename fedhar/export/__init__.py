"""On-device export (``fedhar export``): a run's model as one ONNX or ExecuTorch file from raw
windows to class probabilities, checked for parity with PyTorch and measured for cost."""
