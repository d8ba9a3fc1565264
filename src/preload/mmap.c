/* SPDX-License-Identifier: MIT */
/* mmap.c: being written (see preload.h). */
#include "preload/preload.h"
