# Tests of SharedMemory and ShareableList, including CPython interoperability.
