"""minidl.nn: Modules, layers, initialisation and the functional forms (F)."""

from minidl.nn.module import Module, ModuleList, Parameter, Sequential
