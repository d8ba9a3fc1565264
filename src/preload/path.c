/* SPDX-License-Identifier: MIT */
/* path.c: being written (see preload.h). */
#include "preload/preload.h"
