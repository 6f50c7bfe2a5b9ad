// Symbol visibility for the mproc library: the top-level build hides everything by default
// (-fvisibility=hidden); what the public headers declare is exported with MPROC_API.
#pragma once

#if defined(MPROC_SHARED) || defined(MPROC_BUILDING_SHARED)
#define MPROC_API __attribute__((visibility("default")))
#else
#define MPROC_API
#endif
