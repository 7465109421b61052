"""Painting processes as training data: readers of real recordings (Krita's Recorder, numbered
frames, videos), synthetic processes from the strokes engine, and the tar shards both are kept in
(docs/training.md). Nothing here imports torch, except `torch_dataset`, the PyTorch Dataset."""
