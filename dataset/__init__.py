"""Training data: static-image pseudo videos and VOS datasets (DAVIS, YouTube-VOS, BL30K)."""


class DatasetError(ValueError):
    """Training data that cannot be used; the message names the path and the problem."""
