/* SPDX-License-Identifier: MIT */
/* aio.c: being written (see preload.h). */
#include "preload/preload.h"
