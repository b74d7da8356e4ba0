/* whisper_out.h — transcription output files as whisper-cli writes them (examples/cli/cli.cpp):
 *   txt  one line per segment, leading blanks of the text removed
 *   vtt  "WEBVTT", then "HH:MM:SS.mmm --> HH:MM:SS.mmm" + text per cue
 *   srt  index, "HH:MM:SS,mmm --> HH:MM:SS,mmm", text
 *   csv  "start,end,text" with milliseconds and the text in double quotes ("" inside)
 *   lrc  "[by:mmpipe]", then "[mm:ss.xx]text" per segment
 *   json whisper-cli's -ojf layout (model, params, result.language, transcription[] with timestamps,
 *        offsets, text, tokens[] {text, id, p, t_dtw}) plus words[] when word timestamps were computed;
 *        strings are escaped as JSON requires (whisper-cli escapes only " and \).
 * Times are the segments' centiseconds (t0, t1). */
#ifndef MP_WHISPER_OUT_H
#define MP_WHISPER_OUT_H

#include "llm/whisper_decode.h"

#include <stdio.h>

/* "HH:MM:SS.mmm" (comma: "HH:MM:SS,mmm") of t centiseconds, whisper.cpp's to_timestamp. buf >= 32. */
void whisper_timestamp(int64_t t_cs, int comma, char *buf);

typedef struct whisper_out_info {
    const mp_whisper *m;
    const char *model_path;
    const char *language; /* the -l value */
    int translate;
} whisper_out_info;

int whisper_write_txt(FILE *f, const mp_whisper_result *r);
int whisper_write_vtt(FILE *f, const mp_whisper_result *r);
int whisper_write_srt(FILE *f, const mp_whisper_result *r, int offset_n);
int whisper_write_csv(FILE *f, const mp_whisper_result *r);
int whisper_write_lrc(FILE *f, const mp_whisper_result *r);
int whisper_write_json(FILE *f, const mp_whisper_result *r, const whisper_out_info *info);
/* The console line of whisper-cli: "[HH:MM:SS.mmm --> HH:MM:SS.mmm]  text\n" (or the bare text). */
void whisper_print_segment(FILE *f, const mp_whisper_segment *s, int timestamps);

#endif
