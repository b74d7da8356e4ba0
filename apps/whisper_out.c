/* whisper_out.c — transcription output writers in whisper-cli's formats (see whisper_out.h). */
#include "whisper_out.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

void whisper_timestamp(int64_t t, int comma, char *buf) {
    int64_t msec = t * 10;
    const int64_t hr = msec / (1000 * 60 * 60);
    msec -= hr * (1000 * 60 * 60);
    const int64_t min = msec / (1000 * 60);
    msec -= min * (1000 * 60);
    const int64_t sec = msec / 1000;
    msec -= sec * 1000;
    snprintf(buf, 32, "%02d:%02d:%02d%s%03d", (int)hr, (int)min, (int)sec, comma ? "," : ".", (int)msec);
}

int whisper_write_txt(FILE *f, const mp_whisper_result *r) {
    for (int i = 0; i < r->n_segs; i++) {
        const char *t = r->segs[i].text;
        while (*t == ' ' || *t == '\t') t++;
        fprintf(f, "%s\n", t);
    }
    return ferror(f) ? -1 : 0;
}

int whisper_write_vtt(FILE *f, const mp_whisper_result *r) {
    char a[32], b[32];
    fputs("WEBVTT\n\n", f);
    for (int i = 0; i < r->n_segs; i++) {
        whisper_timestamp(r->segs[i].t0, 0, a);
        whisper_timestamp(r->segs[i].t1, 0, b);
        fprintf(f, "%s --> %s\n%s\n\n", a, b, r->segs[i].text);
    }
    return ferror(f) ? -1 : 0;
}

int whisper_write_srt(FILE *f, const mp_whisper_result *r, int offset_n) {
    char a[32], b[32];
    for (int i = 0; i < r->n_segs; i++) {
        whisper_timestamp(r->segs[i].t0, 1, a);
        whisper_timestamp(r->segs[i].t1, 1, b);
        fprintf(f, "%d\n%s --> %s\n%s\n\n", i + 1 + offset_n, a, b, r->segs[i].text);
    }
    return ferror(f) ? -1 : 0;
}

int whisper_write_csv(FILE *f, const mp_whisper_result *r) {
    fputs("start,end,text\n", f);
    for (int i = 0; i < r->n_segs; i++) {
        fprintf(f, "%" PRId64 ",%" PRId64 ",\"", 10 * r->segs[i].t0, 10 * r->segs[i].t1);
        for (const char *t = r->segs[i].text; *t; t++) {
            if (*t == '"') fputc('"', f);
            fputc(*t, f);
        }
        fputs("\"\n", f);
    }
    return ferror(f) ? -1 : 0;
}

int whisper_write_lrc(FILE *f, const mp_whisper_result *r) {
    fputs("[by:mmpipe]\n", f);
    for (int i = 0; i < r->n_segs; i++) {
        int64_t msec = r->segs[i].t0 * 10;
        const int64_t min = msec / (1000 * 60);
        msec -= min * (1000 * 60);
        const int64_t sec = msec / 1000;
        msec -= sec * 1000;
        fprintf(f, "[%02d:%02d.%02d]%s\n", (int)min, (int)sec, (int)(msec / 10), r->segs[i].text);
    }
    return ferror(f) ? -1 : 0;
}

/* ---------------------------------------------------------------- JSON */

static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (*p < 0x20) fprintf(f, "\\u%04x", *p);
            else fputc(*p, f);
        }
    }
    fputc('"', f);
}

/* whisper-cli's layout: tab indentation, "key": value, ",\n" between members */
typedef struct jw {
    FILE *f;
    int indent;
} jw;

static void j_ind(jw *w) {
    for (int i = 0; i < w->indent; i++) fputc('\t', w->f);
}
static void j_key(jw *w, const char *k) {
    j_ind(w);
    fprintf(w->f, "\"%s\": ", k);
}
static void j_end(jw *w, int last) { fputs(last ? "\n" : ",\n", w->f); }
static void j_obj(jw *w, const char *k) {
    if (k) j_key(w, k);
    else j_ind(w);
    fputs("{\n", w->f);
    w->indent++;
}
static void j_close(jw *w, const char *c, int last) {
    w->indent--;
    j_ind(w);
    fprintf(w->f, "%s%s", c, last ? "\n" : ",\n");
}
static void j_arr(jw *w, const char *k) {
    j_key(w, k);
    fputs("[\n", w->f);
    w->indent++;
}
static void j_s(jw *w, const char *k, const char *v, int last) {
    j_key(w, k);
    json_str(w->f, v ? v : "");
    j_end(w, last);
}
static void j_i(jw *w, const char *k, int64_t v, int last) {
    j_key(w, k);
    fprintf(w->f, "%" PRId64, v);
    j_end(w, last);
}
static void j_f(jw *w, const char *k, double v, int last) { /* C++ ostream default: 6 significant digits */
    j_key(w, k);
    fprintf(w->f, "%g", v);
    j_end(w, last);
}
static void j_b(jw *w, const char *k, int v, int last) {
    j_key(w, k);
    fputs(v ? "true" : "false", w->f);
    j_end(w, last);
}
static void j_times(jw *w, int64_t t0, int64_t t1, int last) {
    char a[32], b[32];
    whisper_timestamp(t0, 1, a);
    whisper_timestamp(t1, 1, b);
    j_obj(w, "timestamps");
    j_s(w, "from", a, 0);
    j_s(w, "to", b, 1);
    j_close(w, "}", 0);
    j_obj(w, "offsets");
    j_i(w, "from", t0 * 10, 0);
    j_i(w, "to", t1 * 10, 1);
    j_close(w, "}", last);
}

int whisper_write_json(FILE *f, const mp_whisper_result *r, const whisper_out_info *info) {
    const mp_whisper *m = info->m;
    jw w = {f, 0};
    j_obj(&w, NULL);
    j_s(&w, "systeminfo", "mmpipe", 0);
    j_obj(&w, "model");
    j_s(&w, "type", m->type, 0);
    j_b(&w, "multilingual", m->sp.multilingual, 0);
    j_i(&w, "vocab", m->hp.n_vocab, 0);
    j_obj(&w, "audio");
    j_i(&w, "ctx", m->hp.n_audio_ctx, 0);
    j_i(&w, "state", m->hp.n_audio_state, 0);
    j_i(&w, "head", m->hp.n_audio_head, 0);
    j_i(&w, "layer", m->hp.n_audio_layer, 1);
    j_close(&w, "}", 0);
    j_obj(&w, "text");
    j_i(&w, "ctx", m->hp.n_text_ctx, 0);
    j_i(&w, "state", m->hp.n_text_state, 0);
    j_i(&w, "head", m->hp.n_text_head, 0);
    j_i(&w, "layer", m->hp.n_text_layer, 1);
    j_close(&w, "}", 0);
    j_i(&w, "mels", m->hp.n_mels, 0);
    j_i(&w, "ftype", m->hp.ftype, 1);
    j_close(&w, "}", 0);
    j_obj(&w, "params");
    j_s(&w, "model", info->model_path, 0);
    j_s(&w, "language", info->language, 0);
    j_b(&w, "translate", info->translate, 1);
    j_close(&w, "}", 0);
    j_obj(&w, "result");
    j_s(&w, "language", mp_whisper_lang_code(r->language), 1);
    j_close(&w, "}", 0);
    j_arr(&w, "transcription");
    for (int i = 0; i < r->n_segs; i++) {
        const mp_whisper_segment *s = &r->segs[i];
        j_obj(&w, NULL);
        j_times(&w, s->t0, s->t1, 0);
        j_s(&w, "text", s->text, 0);
        j_arr(&w, "tokens");
        for (int k = 0; k < s->n_tokens; k++) {
            char *t = mp_whisper_detok_all(m, &s->tokens[k].id, 1);
            j_obj(&w, NULL);
            j_s(&w, "text", t ? t : "", 0);
            j_i(&w, "id", s->tokens[k].id, 0);
            j_f(&w, "p", s->tokens[k].p, 0);
            j_f(&w, "t_dtw", -1, 1);
            j_close(&w, "}", k == s->n_tokens - 1);
            free(t);
        }
        j_close(&w, "]", s->n_words == 0);
        if (s->n_words) {
            j_arr(&w, "words");
            for (int k = 0; k < s->n_words; k++) {
                const mp_whisper_word *wd = &s->words[k];
                j_obj(&w, NULL);
                j_s(&w, "word", wd->text, 0);
                j_f(&w, "start", wd->start, 0);
                j_f(&w, "end", wd->end, 0);
                j_f(&w, "p", wd->p, 1);
                j_close(&w, "}", k == s->n_words - 1);
            }
            j_close(&w, "]", 1);
        }
        j_close(&w, "}", i == r->n_segs - 1);
    }
    j_close(&w, "]", 1);
    j_close(&w, "}", 1);
    return ferror(f) ? -1 : 0;
}

void whisper_print_segment(FILE *f, const mp_whisper_segment *s, int timestamps) {
    if (timestamps) {
        char a[32], b[32];
        whisper_timestamp(s->t0, 0, a);
        whisper_timestamp(s->t1, 0, b);
        fprintf(f, "[%s --> %s]  %s\n", a, b, s->text);
    } else {
        fputs(s->text, f);
    }
}
