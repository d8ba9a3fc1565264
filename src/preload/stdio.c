/* SPDX-License-Identifier: MIT */
/* stdio.c: being written (see preload.h). */
#include "preload/preload.h"
