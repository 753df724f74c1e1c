"""Data: the two datasets as arrays (scikit-learn's bundled 8x8 digits, MNIST through torchvision's
checksummed download), their description, and the train / validation / test split with its size checks.
May import ``core``.
"""
