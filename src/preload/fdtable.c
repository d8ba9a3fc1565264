/* SPDX-License-Identifier: MIT */
/* fdtable.c: being written (see preload.h). */
#include "preload/preload.h"
