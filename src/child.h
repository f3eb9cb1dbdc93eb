/* Child functions that its streams call: lifetime and close accounting. */
#ifndef CP_CHILD_H
#define CP_CHILD_H

#include "childproc.h"

/*
 * Keeps the child (and so its streams) from being freed across an emit,
 * since a listener may release it. Every hold needs one unhold.
 */
void cp__child_hold(cp_child *child);

/* Drops a hold; frees the child when it was the last thing keeping it.
 * The caller must not touch the child or its streams afterwards. */
void cp__child_unhold(cp_child *child);

/* A stream of the child has emitted CLOSE and its handle is closed; the
 * child's own CLOSE waits for every readable stream to get here. */
void cp__child_stream_closed(cp_child *child, cp_stream *stream);

#endif
