"""Errors a user can act on: stages print their message alone, without a traceback."""


class DigitflowError(Exception):
    """A problem with the user's input or environment, with a message that says how to fix it."""


class ParamsError(DigitflowError):
    """``params.yaml`` has an unknown key, a wrong type or a value out of range."""


class DownloadError(DigitflowError):
    """A dataset file could not be downloaded intact from any mirror."""


class TrainingDivergedError(DigitflowError):
    """The training loss became NaN or infinite."""


class TrackingStoreError(DigitflowError):
    """The MLflow store cannot be used as it is."""


class InputError(DigitflowError):
    """A file a stage reads (data, model, run record) is missing or damaged."""


class DataError(DigitflowError):
    """The data cannot make a dataset as it is: a folder that is not one, unreadable images, the same
    picture under two classes."""
