/* The cp_stream object, shared by the files that implement it. */
#ifndef CP_STREAM_INTERNAL_H
#define CP_STREAM_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "emitter.h"
#include "encoding.h"
#include "stream.h"

/* Bytes read from the descriptor per read(2), and the size of the buffer
 * that DATA events point into. */
#define CP__READ_BUFFER_SIZE (64 * 1024)

/* Per poll callback, so that one busy child cannot starve the loop. */
#define CP__READS_PER_WAKEUP 16
#define CP__READ_BYTES_PER_WAKEUP (1024 * 1024)
#define CP__WRITES_PER_WAKEUP 16

#define CP__DEFAULT_HIGH_WATER_MARK (16 * 1024)

/* One cp_stream_write(): bytes still to write, or a finished write whose
 * callback is due. */
typedef struct cp__write_chunk cp__write_chunk;
struct cp__write_chunk {
  cp__write_chunk *next;
  cp_write_cb cb;
  void *data;
  size_t offset;   /* bytes of bytes[] already written */
  size_t len;      /* bytes in bytes[] */
  int status;      /* once finished: what cb receives */
  bool emit_error; /* once finished: emit an error event after cb */
  char bytes[];
};

/* A FIFO of chunks. */
typedef struct cp__chunk_list {
  cp__write_chunk *head;
  cp__write_chunk *tail;
} cp__chunk_list;

/* One cp_stream_pipe() link, the data of its internal listeners. */
typedef struct cp__pipe_link cp__pipe_link;
struct cp__pipe_link {
  cp__pipe_link *next; /* next link of the same source */
  cp_stream *src;
  cp_stream *dst;
  bool end;            /* end dst when src ends */
  bool awaiting_drain; /* src paused until dst drains */
};

/*
 * Allocations: the stream owns idle, its decoders, its pipe links and its
 * write chunks. A read buffer lives only during one poll callback (see
 * cp__stream_on_readable()), so an idle stream has no buffer.
 */
struct cp_stream {
  uv_poll_t poll; /* the descriptor */
  /* Runs write callbacks, DRAIN and FINISH from the loop. NULL until the
   * first write or end() (see cp__stream_prepare_write()), and once
   * closing started. */
  uv_idle_t *idle;
  cp_child *child;
  cp__emitter emitter;
  unsigned flags;        /* CP__STREAM_* */
  int fd;                /* -1 once closing started */
  int poll_events;       /* the mask the poll handle watches now */
  unsigned handles_open; /* while closing: close callbacks still due */
  bool referenced;
  bool destroyed; /* closing started: by destroy, error, or both sides done */
  bool closed;    /* CLOSE emitted and every handle closed */

  /* Readable side. */
  bool flowing;          /* reading from the descriptor */
  bool paused_by_caller; /* cp_stream_pause() without a resume since */
  bool read_eof;         /* read(2) returned 0 */
  bool end_emitted;
  unsigned pipes_awaiting_drain;
  unsigned data_emits;          /* DATA emits in progress */
  cp__pipe_link *pipes;         /* links whose source is this stream */
  cp__decoder *decoder;         /* NULL: DATA carries raw bytes */
  cp__decoder *retired_decoder; /* replaced during an emit of its text */

  /* Writable side. */
  cp__chunk_list queue; /* not fully written yet */
  cp__chunk_list done;  /* written or failed, callbacks due */
  size_t writable_length;
  size_t high_water_mark;
  int write_error;          /* the first failed write, 0 before */
  int destroy_error;        /* what writes get once destroyed; 0 means
                               CP_ERR_STREAM_DESTROYED */
  bool need_drain;
  bool ending;              /* cp_stream_end() was called */
  bool finished;            /* the write side is shut down and FINISH emitted */
  bool write_error_pending; /* its error event and destroy are still due */
};

/* stream.c */
void cp__stream_update_poll(cp_stream *stream);
void cp__stream_emit(cp_stream *stream, const cp_event *event);
void cp__stream_emit_error(cp_stream *stream, int error, const char *syscall);
void cp__stream_begin_close(cp_stream *stream);
void cp__stream_maybe_close(cp_stream *stream);
void cp__stream_schedule(cp_stream *stream);
int cp__stream_prepare_write(cp_stream *stream);

/* stream-read.c */
bool cp__stream_should_read(const cp_stream *stream);
bool cp__stream_on_readable(cp_stream *stream);
void cp__stream_set_flowing(cp_stream *stream, bool flowing);
void cp__stream_resume_after_pipe(cp_stream *stream);
void cp__stream_free_read_side(cp_stream *stream);

/* stream-write.c */
bool cp__stream_on_writable(cp_stream *stream);
void cp__stream_after_write(cp_stream *stream);
void cp__stream_cancel_queued_writes(cp_stream *stream);
void cp__stream_run_last_write_callbacks(cp_stream *stream);
void cp__stream_free_write_side(cp_stream *stream);

/* stream-pipe.c */
bool cp__stream_has_pipes(const cp_stream *stream);

#endif
