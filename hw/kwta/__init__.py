from .local import LocalKWTA
