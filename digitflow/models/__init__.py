"""Models: the scikit-learn pipeline and the PyTorch module, each holding its own scaling so it takes raw
pixels; their files, card and folder under ``models/``; the recipes that turn a picture into a model's
input (a folder of your own pictures is made into its dataset by the same one) and asking a saved model
(``predict``). May import ``core`` and ``data``.
"""
