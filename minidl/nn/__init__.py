"""minidl.nn: Modules, layers, initialisation and the functional forms (F)."""

from minidl.nn.module import Module, ModuleList, Parameter, Sequential
from minidl.nn import functional, init
from minidl.nn.conv import Conv1d, Conv2d
from minidl.nn.pooling import (
    AdaptiveAvgPool1d,
    AdaptiveAvgPool2d,
    AdaptiveMaxPool2d,
    AvgPool1d,
    AvgPool2d,
    MaxPool1d,
    MaxPool2d,
)
from minidl.nn.activation import LeakyReLU, LogSoftmax, ReLU, Sigmoid, SiLU, Softmax, Tanh
from minidl.nn.dropout import Dropout
from minidl.nn.embedding import Embedding
from minidl.nn.linear import Flatten, Identity, Linear
from minidl.nn.loss import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss, NLLLoss
from minidl.nn.normalization import BatchNorm1d, BatchNorm2d, BatchNormReLU2d
from minidl.nn.recurrent import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNBase, RNNCell, RNNCellBase
from minidl.nn import utils
