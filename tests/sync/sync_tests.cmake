# Tests of the synchronization primitives and shared values.
