// mproc: Python's multiprocessing for C++20 on Linux. The umbrella header; each part also has
// its own header named after the Python module it mirrors.
#pragma once

#include "mproc/codec.hpp"
#include "mproc/connection.hpp"
#include "mproc/errors.hpp"
#include "mproc/listener.hpp"
#include "mproc/managers.hpp"
#include "mproc/pool.hpp"
#include "mproc/process.hpp"
#include "mproc/queues.hpp"
#include "mproc/shared_memory.hpp"
#include "mproc/sharedctypes.hpp"
#include "mproc/synchronize.hpp"
