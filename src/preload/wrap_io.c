/* SPDX-License-Identifier: MIT */
/* wrap_io.c: being written (see preload.h). */
#include "preload/preload.h"
