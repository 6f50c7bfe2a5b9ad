// Symbol visibility for the mproc library: the top-level build hides everything by default
// (-fvisibility=hidden); what the public headers declare is exported with MPROC_API.
#pragma once

#if defined(MPROC_SHARED) || defined(MPROC_BUILDING_SHARED)
#define MPROC_API __attribute__((visibility("default")))
#else
#define MPROC_API
#endif

// For the few inline fast paths whose whole point is to be inlined (a ring's per-message push and
// pop): GCC's heuristics left SpscRing::try_push_fixed out of line in a benchmark's loop, a call
// and a spill of the value per message, at 0.6x the inlined rate.
#define MPROC_ALWAYS_INLINE [[gnu::always_inline]] inline
