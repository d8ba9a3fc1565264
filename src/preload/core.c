/* SPDX-License-Identifier: MIT */
/* core.c: being written (see preload.h). */
#include "preload/preload.h"
