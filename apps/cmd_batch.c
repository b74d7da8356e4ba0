/* cmd_batch.c — `mmpipe batch`: OpenAI/vLLM batch JSONL in, one result line per request out.
 *
 * The input is streamed; requests go into the continuous-batching engine (runtime/engine.h) as the
 * engine has room, so the decoder always has a full batch; results are appended durably as each
 * request finishes (runtime/batch_io.h). --resume skips what the output already holds; --shard I/N
 * (or Slurm / Kubernetes array variables) takes a deterministic share of the requests.
 */
#include "cli.h"
#include "mmpipe.h"

#include "llm/jinja.h"
#include "runtime/batch_io.h"
#include "runtime/engine.h"
#include "runtime/textmodel.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: mmpipe batch -m MODEL -o OUT.jsonl [options] REQUESTS.jsonl\n"
            "Runs every request of an OpenAI/vLLM batch file and writes one result line per request.\n"
            "Request urls: /v1/chat/completions (text messages, rendered with the model's chat template),\n"
            "/v1/completions (\"prompt\" as is). Image, audio and video content and /v1/audio/transcriptions\n"
            "are not implemented yet in batch mode: such requests get an error record.\n"
            "  -m, --model MODEL     GGUF file, HF folder, llama2.c .bin, or hub id ORG/NAME[:FILE]\n"
            "      --tokenizer FILE  tokenizer for a llama2.c checkpoint\n"
            "  -o, --output FILE     results (JSONL); never overwritten: use --resume to continue one\n"
            "      --resume          skip requests whose custom_id is already in the output; repair a torn last line\n"
            "      --shard I/N       process only shard I of N (deterministic by custom_id); default from\n"
            "                        SLURM_ARRAY_TASK_ID/COUNT or JOB_COMPLETION_INDEX + MMPIPE_NUM_SHARDS;\n"
            "                        the output name gets .shard-IIIII-of-NNNNN (or replaces {shard})\n"
            "      --max-seqs N      sequences decoding together (default 16)\n"
            "      --step-tokens N   tokens per forward step, decode + prefill chunks (default 512)\n"
            "      --max-tokens N    default max_tokens when a request gives none (default 512)\n"
            "      --grace S         on SIGINT/SIGTERM, seconds to finish in-flight requests (default 30)\n"
            "      --progress        progress bar even when stderr is not a terminal\n"
            "  -t, --threads N       threads (default: physical cores)\n"
            "      --device cpu|cuda|auto\n"
            "Exit status: 0 all requests succeeded; 1 some got error records; 2 usage or setup error;\n"
            "3 interrupted (the summary says what is left; run again with --resume).\n");
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static volatile sig_atomic_t g_stop = 0;
static void on_signal(int sig) {
    g_stop = sig;
}

typedef struct batch_ctx {
    mp_textmodel *tm;
    const char *model_name;
    mp_res_writer w;
    int default_max_tokens;
    int64_t n_ok, n_err, n_skipped, n_dup, n_other_shard, n_read, tokens_out;
    int write_failed;
    mp_error werr;
    mp_idset seen;
} batch_ctx;

/* the per-request data that travels through the engine */
typedef struct req_state {
    char *custom_id;
    int kind;
    int logprobs;
} req_state;

static void put_line(batch_ctx *b, char *line) {
    if (!line) {
        b->write_failed = 1;
        mp_errf(&b->werr, "out of memory");
        return;
    }
    if (!b->write_failed && mp_res_writer_put(&b->w, line, &b->werr) < 0) b->write_failed = 1;
    free(line);
}

static void put_error(batch_ctx *b, const char *custom_id, int status, const char *code, const char *msg) {
    put_line(b, mp_result_error(custom_id, status, code, msg));
    b->n_err++;
}

/* ---------------------------------------------------------------- request parsing */

static int json_num(const cJSON *body, const char *key, double lo, double hi, double *v, char *msg, size_t cap) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(body, key);
    if (!j || cJSON_IsNull(j)) return 0;
    if (!cJSON_IsNumber(j) || j->valuedouble < lo || j->valuedouble > hi || j->valuedouble != j->valuedouble) {
        snprintf(msg, cap, "\"%s\" must be a number in [%g, %g]", key, lo, hi);
        return -1;
    }
    *v = j->valuedouble;
    return 1;
}

/* Sampling and limits from the body, with the model's defaults (generation_config.json) underneath.
 * Without a "seed" the seed is derived from the custom_id: reruns and resumes give the same result. */
static int parse_params(batch_ctx *b, const char *custom_id, const cJSON *body, mp_gen_request *r, char *msg,
                        size_t cap) {
    r->sampling = b->tm->sampling;
    r->sampling.seed = mp_id_hash(custom_id);
    r->max_new = b->default_max_tokens;
    double v;
    int rc;
    if ((rc = json_num(body, "n", 1, 1, &v, msg, cap)) < 0) {
        snprintf(msg, cap, "\"n\" other than 1 is not supported");
        return -1;
    }
    if ((rc = json_num(body, "max_tokens", 1, 1e7, &v, msg, cap)) < 0) return -1;
    if (rc) r->max_new = (int)v;
    if ((rc = json_num(body, "max_completion_tokens", 1, 1e7, &v, msg, cap)) < 0) return -1;
    if (rc) r->max_new = (int)v;
    if ((rc = json_num(body, "temperature", 0, 100, &v, msg, cap)) < 0) return -1;
    if (rc) r->sampling.temperature = (float)v;
    if ((rc = json_num(body, "top_p", 0, 1, &v, msg, cap)) < 0) return -1;
    if (rc) r->sampling.top_p = (float)v;
    if ((rc = json_num(body, "top_k", -1, 1e9, &v, msg, cap)) < 0) return -1;
    if (rc) r->sampling.top_k = v < 0 ? 0 : (int)v;
    if ((rc = json_num(body, "min_p", 0, 1, &v, msg, cap)) < 0) return -1;
    if (rc) r->sampling.min_p = (float)v;
    if ((rc = json_num(body, "frequency_penalty", -2, 2, &v, msg, cap)) < 0) return -1;
    if (rc) r->sampling.frequency_penalty = (float)v;
    if ((rc = json_num(body, "presence_penalty", -2, 2, &v, msg, cap)) < 0) return -1;
    if (rc) r->sampling.presence_penalty = (float)v;
    if ((rc = json_num(body, "repetition_penalty", 1e-3, 100, &v, msg, cap)) < 0) return -1;
    if (rc) r->sampling.repeat_penalty = (float)v;
    if ((rc = json_num(body, "seed", -9.2e18, 9.2e18, &v, msg, cap)) < 0) return -1;
    if (rc) r->sampling.seed = (uint64_t)(int64_t)v;
    const cJSON *lp = cJSON_GetObjectItemCaseSensitive(body, "logprobs");
    if (cJSON_IsTrue(lp)) {
        r->top_logprobs = 1;
        if ((rc = json_num(body, "top_logprobs", 0, 20, &v, msg, cap)) < 0) return -1;
        if (rc && v > 0) r->top_logprobs = (int)v;
    }
    const cJSON *stop = cJSON_GetObjectItemCaseSensitive(body, "stop");
    if (cJSON_IsString(stop)) {
        r->stop[r->n_stop++] = stop->valuestring;
    } else if (cJSON_IsArray(stop)) {
        const cJSON *s;
        cJSON_ArrayForEach(s, stop) {
            if (!cJSON_IsString(s) || r->n_stop == MP_MAX_STOP) {
                snprintf(msg, cap, "\"stop\" must be a string or a list of at most %d strings", MP_MAX_STOP);
                return -1;
            }
            if (s->valuestring[0]) r->stop[r->n_stop++] = s->valuestring;
        }
    } else if (stop && !cJSON_IsNull(stop)) {
        snprintf(msg, cap, "\"stop\" must be a string or a list of strings");
        return -1;
    }
    const cJSON *ign = cJSON_GetObjectItemCaseSensitive(body, "ignore_eos");
    if (cJSON_IsTrue(ign)) r->ignore_eos = 1;
    return 0;
}

/* Chat messages -> the text the model sees. Only text content is accepted for now. */
static int render_chat(batch_ctx *b, const cJSON *body, char **prompt, int *status, char *msg, size_t cap) {
    *status = 400;
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(body, "messages");
    if (!cJSON_IsArray(msgs) || cJSON_GetArraySize(msgs) == 0) {
        snprintf(msg, cap, "\"messages\" must be a non-empty list");
        return -1;
    }
    if (!b->tm->chat_template) {
        snprintf(msg, cap, "the model has no chat template; use /v1/completions with a \"prompt\"");
        return -1;
    }
    int n = cJSON_GetArraySize(msgs), k = 0, n_parts = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, msgs) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (cJSON_IsArray(c)) n_parts += cJSON_GetArraySize(c);
    }
    mp_chat_msg *cm = calloc((size_t)n, sizeof *cm);
    mp_chat_part *parts = calloc((size_t)n_parts + 1, sizeof *parts);
    if (!cm || !parts) {
        free(cm);
        free(parts);
        snprintf(msg, cap, "out of memory");
        *status = 500;
        return -1;
    }
    int pi = 0, rc = 0;
    cJSON_ArrayForEach(m, msgs) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (!cJSON_IsString(role)) {
            snprintf(msg, cap, "messages[%d]: missing \"role\"", k);
            rc = -1;
            break;
        }
        cm[k].role = role->valuestring;
        if (cJSON_IsString(c)) {
            cm[k].content = c->valuestring;
        } else if (cJSON_IsArray(c)) {
            cm[k].parts = parts + pi;
            const cJSON *p;
            cJSON_ArrayForEach(p, c) {
                const cJSON *type = cJSON_GetObjectItemCaseSensitive(p, "type");
                const cJSON *text = cJSON_GetObjectItemCaseSensitive(p, "text");
                if (!cJSON_IsString(type)) {
                    snprintf(msg, cap, "messages[%d]: a content part has no \"type\"", k);
                    rc = -1;
                    break;
                }
                if (strcmp(type->valuestring, "text") != 0) {
                    snprintf(msg, cap,
                             "messages[%d]: content type \"%s\" is not implemented yet in batch mode (text only)", k,
                             type->valuestring);
                    rc = -1;
                    break;
                }
                if (!cJSON_IsString(text)) {
                    snprintf(msg, cap, "messages[%d]: a text part has no \"text\"", k);
                    rc = -1;
                    break;
                }
                parts[pi].type = "text";
                parts[pi].text = text->valuestring;
                pi++;
                cm[k].n_parts++;
            }
            if (rc) break;
        } else if (c && !cJSON_IsNull(c)) {
            snprintf(msg, cap, "messages[%d]: \"content\" must be a string or a list of parts", k);
            rc = -1;
            break;
        } else {
            cm[k].content = "";
        }
        k++;
    }
    if (rc == 0) {
        mp_chat_params cp = mp_chat_default_params();
        cp.bos_token = b->tm->bos_text;
        cp.eos_token = b->tm->eos_text;
        cp.add_generation_prompt = 1;
        cp.now_unix = 1; /* fixed date for strftime_now(): results must not depend on the run's day */
        mp_error err;
        if (mp_chat_apply(b->tm->chat_template, cm, k, &cp, prompt, &err) < 0) {
            snprintf(msg, cap, "chat template: %.900s", err.msg);
            *status = 500;
            rc = -1;
        }
    }
    free(cm);
    free(parts);
    return rc;
}

static int tokenize_all(const mp_tokenizer *tok, const char *text, int add_special, int32_t **ids) {
    size_t len = strlen(text);
    int cap = (int)(len + 16);
    *ids = malloc((size_t)cap * sizeof(int32_t));
    if (!*ids) return -1;
    int n = mp_tokenize(tok, text, len, add_special, 1, *ids, cap);
    if (n > cap) {
        free(*ids);
        *ids = malloc((size_t)n * sizeof(int32_t));
        if (!*ids) return -1;
        n = mp_tokenize(tok, text, len, add_special, 1, *ids, n);
    }
    return n;
}

/* Turns one request into an engine submission, or writes its error record. */
static void handle_request(batch_ctx *b, mp_engine *e, mp_request *q) {
    char msg[1024];
    int status = 400;
    char *prompt = NULL;
    int32_t *ids = NULL;
    mp_gen_request r;
    memset(&r, 0, sizeof r);
    if (q->model && b->model_name && strcmp(q->model, b->model_name) != 0 && strcmp(q->model, b->tm->path) != 0) {
        snprintf(msg, sizeof msg, "this run serves model \"%s\"; the request asks for \"%s\"", b->model_name, q->model);
        put_error(b, q->custom_id, 400, "model_not_found", msg);
        return;
    }
    if (q->kind == MP_REQ_TRANSCRIBE) {
        put_error(b, q->custom_id, 501, "not_implemented", "/v1/audio/transcriptions is not implemented yet in batch mode");
        return;
    }
    int add_special = 0;
    if (q->kind == MP_REQ_CHAT) {
        if (render_chat(b, q->body, &prompt, &status, msg, sizeof msg) < 0) goto bad;
    } else {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(q->body, "prompt");
        if (!cJSON_IsString(p)) {
            snprintf(msg, sizeof msg, "\"prompt\" must be a string");
            goto bad;
        }
        prompt = strdup(p->valuestring);
        add_special = 1; /* a raw prompt gets BOS like `mmpipe generate` */
    }
    if (parse_params(b, q->custom_id, q->body, &r, msg, sizeof msg) < 0) goto bad;
    int n = tokenize_all(b->tm->tok, prompt, add_special, &ids);
    if (n < 0) {
        snprintf(msg, sizeof msg, "could not tokenize the prompt");
        goto bad;
    }
    if (n == 0) {
        int32_t bos = mp_tokenizer_bos(b->tm->tok);
        if (bos < 0) {
            snprintf(msg, sizeof msg, "empty prompt and the model has no BOS token");
            goto bad;
        }
        ids[n++] = bos;
    }
    req_state *rs = calloc(1, sizeof *rs);
    if (!rs || !(rs->custom_id = strdup(q->custom_id))) {
        free(rs);
        snprintf(msg, sizeof msg, "out of memory");
        status = 500;
        goto bad;
    }
    rs->kind = q->kind;
    rs->logprobs = r.top_logprobs > 0;
    r.n = n;
    r.tokens = ids;
    r.user = rs;
    mp_error err;
    if (mp_engine_submit(e, &r, &err) < 0) {
        free(rs->custom_id);
        free(rs);
        snprintf(msg, sizeof msg, "%s", err.msg);
        status = 500;
        goto bad;
    }
    free(prompt);
    free(ids);
    return;
bad:
    put_error(b, q->custom_id, status, status >= 500 ? "internal_error" : "invalid_request", msg);
    free(prompt);
    free(ids);
}

/* ---------------------------------------------------------------- results */

static cJSON *logprobs_json(const mp_tokenizer *tok, const mp_gen_result *res, int chat) {
    cJSON *lp = cJSON_CreateObject();
    cJSON *content = cJSON_AddArrayToObject(lp, chat ? "content" : "tokens_detail");
    for (int i = 0; i < res->n_tokens; i++) {
        char piece[256];
        int pl = mp_token_to_bytes(tok, res->tokens[i], piece, sizeof piece - 1);
        piece[pl > 0 ? pl : 0] = 0;
        cJSON *t = cJSON_CreateObject();
        cJSON_AddStringToObject(t, "token", piece);
        cJSON_AddNumberToObject(t, "logprob", res->logprobs[i]);
        cJSON *top = cJSON_AddArrayToObject(t, "top_logprobs");
        for (int k = 0; k < res->top_k; k++) {
            int32_t id = res->top_ids[(size_t)i * res->top_k + k];
            pl = mp_token_to_bytes(tok, id, piece, sizeof piece - 1);
            piece[pl > 0 ? pl : 0] = 0;
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "token", piece);
            cJSON_AddNumberToObject(o, "logprob", res->top_logprobs[(size_t)i * res->top_k + k]);
            cJSON_AddItemToArray(top, o);
        }
        cJSON_AddItemToArray(content, t);
    }
    return lp;
}

static void on_done(void *ctx, const mp_gen_result *res) {
    batch_ctx *b = ctx;
    req_state *rs = res->user;
    if (!strcmp(res->finish_reason, "cancelled")) {
        /* stopped by a signal: no record, so --resume runs it again */
    } else if (!res->ok) {
        put_error(b, rs->custom_id, 400, "invalid_request", res->error);
    } else {
        int chat = rs->kind == MP_REQ_CHAT;
        cJSON *body = cJSON_CreateObject();
        char id[64];
        snprintf(id, sizeof id, "%s-%016llx", chat ? "chatcmpl" : "cmpl", (unsigned long long)mp_id_hash(rs->custom_id));
        cJSON_AddStringToObject(body, "id", id);
        cJSON_AddStringToObject(body, "object", chat ? "chat.completion" : "text_completion");
        cJSON_AddNumberToObject(body, "created", (double)time(NULL));
        cJSON_AddStringToObject(body, "model", b->model_name);
        cJSON *choices = cJSON_AddArrayToObject(body, "choices");
        cJSON *c = cJSON_CreateObject();
        cJSON_AddNumberToObject(c, "index", 0);
        if (chat) {
            cJSON *m = cJSON_AddObjectToObject(c, "message");
            cJSON_AddStringToObject(m, "role", "assistant");
            cJSON_AddStringToObject(m, "content", res->text);
        } else {
            cJSON_AddStringToObject(c, "text", res->text);
        }
        if (rs->logprobs && res->logprobs) cJSON_AddItemToObject(c, "logprobs", logprobs_json(b->tm->tok, res, chat));
        else cJSON_AddNullToObject(c, "logprobs");
        cJSON_AddStringToObject(c, "finish_reason", res->finish_reason);
        cJSON_AddItemToArray(choices, c);
        cJSON *u = cJSON_AddObjectToObject(body, "usage");
        cJSON_AddNumberToObject(u, "prompt_tokens", res->n_prompt);
        cJSON_AddNumberToObject(u, "completion_tokens", res->n_tokens);
        cJSON_AddNumberToObject(u, "total_tokens", res->n_prompt + res->n_tokens);
        put_line(b, mp_result_ok(rs->custom_id, body));
        b->n_ok++;
        b->tokens_out += res->n_tokens;
    }
    free(rs->custom_id);
    free(rs);
}

/* ---------------------------------------------------------------- progress */

static void progress(batch_ctx *b, mp_engine *e, double t0, int tty, int final) {
    static double last = 0;
    double t = now_s();
    if (!final && t - last < (tty ? 0.2 : 5.0)) return;
    last = t;
    double el = t - t0 + 1e-9;
    int64_t done = b->n_ok + b->n_err;
    fprintf(stderr, "%smmpipe batch: %lld done (%lld errors), %d in flight, %.2f req/s, %.1f tok/s, %.0f s%s",
            tty && !final ? "\r" : "", (long long)done, (long long)b->n_err, e ? mp_engine_pending(e) : 0, done / el,
            b->tokens_out / el, el, tty && !final ? "   " : "\n");
    fflush(stderr);
}

/* ---------------------------------------------------------------- main */

int cmd_batch(int argc, char **argv) {
    const char *model = NULL, *out = NULL, *in = NULL, *tok_path = NULL, *shard_spec = NULL;
    int resume = 0, force_progress = 0;
    double grace = 30;
    mp_engine_params ep = mp_engine_default_params();
    cli_common cc = {0, MMPIPE_DEVICE_AUTO};
    batch_ctx b;
    memset(&b, 0, sizeof b);
    b.default_max_tokens = 512;
    for (int i = 1; i < argc;) {
        int r = cli_parse_common(&cc, argc, argv, &i);
        if (r < 0) return 2;
        if (r > 0) continue;
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--resume")) { resume = 1; i++; continue; }
        if (!strcmp(a, "--progress")) { force_progress = 1; i++; continue; }
        if (a[0] != '-' || !strcmp(a, "-")) {
            if (in) {
                fprintf(stderr, "mmpipe batch: one requests file per run (got '%s' and '%s')\n", in, a);
                return 2;
            }
            in = a;
            i++;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "mmpipe batch: %s needs a value (see --help)\n", a);
            return 2;
        }
        const char *v = argv[i + 1];
        char *end;
        long n = strtol(v, &end, 10);
        int num_ok = *v && !*end;
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "-o") || !strcmp(a, "--output")) out = v;
        else if (!strcmp(a, "--tokenizer")) tok_path = v;
        else if (!strcmp(a, "--shard")) shard_spec = v;
        else if (!strcmp(a, "--max-seqs") && num_ok && n >= 1 && n <= 4096) ep.max_seqs = (int)n;
        else if (!strcmp(a, "--step-tokens") && num_ok && n >= 1 && n <= 1 << 20) ep.step_tokens = (int)n;
        else if (!strcmp(a, "--max-tokens") && num_ok && n >= 1 && n <= 1 << 24) b.default_max_tokens = (int)n;
        else if (!strcmp(a, "--grace") && num_ok && n >= 0) grace = (double)n;
        else {
            fprintf(stderr, "mmpipe batch: unknown option or bad value: %s %s\n", a, v);
            return 2;
        }
        i += 2;
    }
    if (!model || !out || !in) {
        usage(stderr);
        return 2;
    }
    mp_error err;
    mp_shard sh;
    if (mp_shard_resolve(&sh, shard_spec, &err) < 0) {
        fprintf(stderr, "mmpipe batch: %s\n", err.msg);
        return 2;
    }
    char out_path[4096];
    mp_shard_output_name(&sh, out, out_path, sizeof out_path);

    /* from here on SIGINT/SIGTERM stop the run gracefully (also while the model loads) */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    int rc = 2;
    mp_threadpool *tp = mp_threadpool_create(cc.n_threads);
    mp_exec ex;
    mp_textmodel tm;
    mp_engine *e = NULL;
    mp_req_reader rd;
    memset(&rd, 0, sizeof rd);
    int ex_ok = 0, tm_ok = 0, w_ok = 0;
    mp_idset done = {0};
    int64_t n_done = 0;
    double t0 = now_s();
    if (mp_req_reader_open(&rd, in, &err) < 0) goto fail;
    if (mp_res_writer_open(&b.w, out_path, resume, &done, &n_done, &err) < 0) goto fail;
    w_ok = 1;
    if (n_done) fprintf(stderr, "mmpipe batch: resuming %s: %lld results already there\n", out_path, (long long)n_done);
    if (mp_exec_init(&ex, cc.device, tp, (size_t)64 << 20, &err) < 0) goto fail;
    ex_ok = 1;
    if (mp_textmodel_load(&tm, model, tok_path, &ex, &err) < 0) goto fail;
    tm_ok = 1;
    b.tm = &tm;
    b.model_name = model;
    if (mp_engine_create(&e, &tm.llm, tm.tok, &ex, &ep, on_done, &b, &err) < 0) goto fail;
    if (sh.count > 1) fprintf(stderr, "mmpipe batch: shard %d of %d -> %s\n", sh.index, sh.count, out_path);

    int tty = isatty(2) || force_progress;
    int eof = 0, engine_failed = 0;
    double t_stop = 0;
    int64_t left_unread = 0;
    while (!b.write_failed) {
        /* keep the engine's queue full: about two batches' worth of requests waiting or running */
        while (!eof && !g_stop && mp_engine_pending(e) < 2 * ep.max_seqs) {
            mp_request q;
            char *bad_id = NULL;
            int r = mp_req_reader_next(&rd, &q, &bad_id, &err);
            if (r == 0) {
                eof = 1;
                break;
            }
            b.n_read++;
            if (r < 0) {
                if (!bad_id && rd.line_no == 0) goto fail; /* read error */
                if (bad_id && (!mp_shard_owns(&sh, bad_id) || mp_idset_has(&done, bad_id))) {
                    free(bad_id);
                    continue;
                }
                if (!bad_id && sh.index != 0) continue; /* id-less bad lines are reported by shard 0 only */
                put_error(&b, bad_id, 400, "invalid_request", err.msg);
                free(bad_id);
                continue;
            }
            if (!mp_shard_owns(&sh, q.custom_id)) {
                b.n_other_shard++;
            } else if (mp_idset_has(&done, q.custom_id)) {
                b.n_skipped++;
            } else if (mp_idset_add(&b.seen, q.custom_id) == 0) {
                b.n_dup++;
                fprintf(stderr, "mmpipe batch: %s:%lld: duplicate custom_id \"%s\" skipped (its first occurrence is processed)\n",
                        rd.path, (long long)q.line_no, q.custom_id);
            } else {
                handle_request(&b, e, &q);
            }
            mp_request_free(&q);
        }
        if (g_stop && t_stop == 0) {
            t_stop = now_s();
            fprintf(stderr, "\nmmpipe batch: %s: finishing %d in-flight request(s) (grace %.0f s)...\n",
                    g_stop == SIGINT ? "interrupted" : "terminated", mp_engine_pending(e), grace);
        }
        if (mp_engine_pending(e) == 0) {
            if (eof || g_stop) break;
            continue;
        }
        if (g_stop && now_s() - t_stop > grace) break;
        if (mp_engine_step(e, &err) < 0) {
            fprintf(stderr, "mmpipe batch: %s\n", err.msg);
            engine_failed = 1;
            break;
        }
        if (tty) progress(&b, e, t0, 1, 0);
        else progress(&b, e, t0, 0, 0);
    }
    int in_flight = e ? mp_engine_pending(e) : 0;
    if (g_stop && !eof) { /* how much input is left, for the summary (streamed, nothing kept) */
        mp_request q;
        char *bad_id = NULL;
        int r;
        while ((r = mp_req_reader_next(&rd, &q, &bad_id, &err)) != 0) {
            if (r > 0) {
                if (mp_shard_owns(&sh, q.custom_id) && !mp_idset_has(&done, q.custom_id)) left_unread++;
                mp_request_free(&q);
            }
            free(bad_id);
            bad_id = NULL;
        }
    }
    progress(&b, e, t0, tty, 1);
    if (b.write_failed) {
        fprintf(stderr, "mmpipe batch: %s\n", b.werr.msg);
        rc = 2;
    } else if (g_stop || engine_failed) {
        fprintf(stderr, "mmpipe batch: stopped: %lld done, %d in flight abandoned, %lld not started; run again with --resume\n",
                (long long)(b.n_ok + b.n_err), in_flight, (long long)left_unread);
        rc = 3;
    } else {
        rc = b.n_err ? 1 : 0;
    }
    if (b.n_skipped) fprintf(stderr, "mmpipe batch: %lld request(s) skipped: already in %s\n", (long long)b.n_skipped, out_path);
    if (b.n_dup) fprintf(stderr, "mmpipe batch: %lld duplicate custom_id(s) in the input\n", (long long)b.n_dup);
    goto done;
fail:
    fprintf(stderr, "mmpipe batch: %s\n", err.msg);
    rc = 2;
done:
    if (e) mp_engine_free(e); /* unfinished requests are cancelled without a record: --resume redoes them */
    if (w_ok && mp_res_writer_close(&b.w, &err) < 0) {
        fprintf(stderr, "mmpipe batch: %s\n", err.msg);
        rc = 2;
    }
    mp_req_reader_close(&rd);
    if (tm_ok) mp_textmodel_free(&tm, &ex);
    if (ex_ok) mp_exec_free(&ex);
    mp_threadpool_free(tp);
    mp_idset_free(&done);
    mp_idset_free(&b.seen);
    return rc;
}
