"""Models: the scikit-learn pipeline and the PyTorch module, each holding its own scaling so it takes raw
pixels; their files, card and folder under ``models/``; turning image files into a model's input and
asking a saved model (``predict``). May import ``core`` and ``data``.
"""
