"""Data: the datasets as arrays (scikit-learn's bundled 8x8 digits, MNIST through torchvision's checksummed
download, a folder of your own labelled pictures and the example one), their description, the train /
validation / test split with its size checks, and the data checks before training. May import ``core``.
"""
