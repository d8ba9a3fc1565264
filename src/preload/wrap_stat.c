/* SPDX-License-Identifier: MIT */
/* wrap_stat.c: being written (see preload.h). */
#include "preload/preload.h"
