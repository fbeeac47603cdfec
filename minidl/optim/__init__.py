"""minidl.optim: optimizers (SGD, Adam, AdamW, RMSprop), learning-rate schedules (lr_scheduler) and EarlyStopping."""

from minidl.optim import lr_scheduler
from minidl.optim.adam import Adam, AdamW
from minidl.optim.early_stopping import EarlyStopping
from minidl.optim.optimizer import Optimizer
from minidl.optim.rmsprop import RMSprop
from minidl.optim.sgd import SGD

__all__ = ["SGD", "Adam", "AdamW", "RMSprop", "EarlyStopping", "Optimizer", "lr_scheduler"]
