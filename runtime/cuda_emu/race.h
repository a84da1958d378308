// The shared-memory race detector (race.cpp): the scheduler tells it where barriers fall.
#pragma once

namespace sd_emu::race {

void begin_launch();        // watch the static shared section and the launch's dynamic memory
void end_launch();          // stop watching
void begin_block();         // a fresh block: nothing in shared memory is written yet
void barrier();             // every thread passed a __syncthreads: a new interval begins
void warp_synced(int warp);  // every lane of `warp` passed a __syncwarp

}  // namespace sd_emu::race
