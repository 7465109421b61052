"""`paintstep train-lora`: a painting-process LoRA trained on a dataset of processes.

`command.py` (the command line) and `settings.py` stay free of torch; the training itself
(`loop.py` and what it uses) imports torch, diffusers, peft and accelerate when a run starts.
"""
