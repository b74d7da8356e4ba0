/* vlm.c — SmolVLM / Idefics3 model assembly, image preprocessing and the image-token prompt layout
 * (see vlm.h). */
#include "runtime/vlm.h"
#include "runtime/strbuf.h"

#include "llm/jinja.h"
#include "models/gguf.h"
#include "models/hfjson.h"
#include "models/hub.h"
#include "models/mmap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---------------------------------------------------------------- loading */

static int load_text_side(mp_vlm *m, mp_error *err) {
    if (mp_is_dir(m->path)) {
        if (mp_tokenizer_load_hf(&m->tok, m->path, err) < 0) return -1;
        mp_error terr;
        if (mp_chat_template_load_hf(m->path, &m->chat_template, &terr) < 0) m->chat_template = NULL;
        return 0;
    }
    mp_gguf *g = NULL;
    if (mp_gguf_open(&g, m->path, err) < 0) return -1;
    int rc = mp_tokenizer_load_gguf(&m->tok, g, err);
    mp_error terr;
    if (rc == 0 && mp_chat_template_from_gguf(g, &m->chat_template, &terr) < 0) m->chat_template = NULL;
    mp_gguf_free(g);
    return rc;
}

/* generation_config.json: greedy unless do_sample (transformers' generate()) */
static int sampling_defaults(mp_vlm *m, mp_error *err) {
    m->sampling = mp_sampler_default_params();
    m->sampling.temperature = 0.0f;
    if (!mp_is_dir(m->path)) return 0;
    mp_hf_config hc;
    if (mp_hf_config_load(&hc, m->path, err) < 0) return -1;
    int rc = 0, do_sample = 0;
    double t = 1.0, p = 1.0;
    int64_t k = 0;
    const mp_json *j = &hc.generation;
    if (mp_json_bool_or(j, "do_sample", 0, &do_sample, err) < 0 || mp_json_f64_or(j, "temperature", 1.0, &t, err) < 0 ||
        mp_json_f64_or(j, "top_p", 1.0, &p, err) < 0 || mp_json_int_or(j, "top_k", 0, &k, err) < 0)
        rc = -1;
    else if (do_sample) {
        m->sampling.temperature = (float)t;
        m->sampling.top_p = (float)p;
        m->sampling.top_k = k > 0 && k < (1 << 30) ? (int)k : 0;
    }
    mp_hf_config_free(&hc);
    return rc;
}

static int special_id(const mp_vlm *m, const char *piece, int32_t *id, mp_error *err) {
    *id = mp_tokenizer_find(m->tok, piece);
    if (*id < 0) return mp_errf(err, "%s: the tokenizer has no %s token (not a SmolVLM / Idefics3 model?)", m->path, piece);
    return 0;
}

int mp_vlm_load(mp_vlm *m, const char *model, const char *mmproj, mp_exec *ex, mp_error *err) {
    memset(m, 0, sizeof *m);
    if (mp_model_resolve(model, NULL, m->path, sizeof m->path, err) < 0) return -1;
    if (!mmproj && !mp_is_dir(m->path))
        return mp_errf(err, "%s: a text model file has no vision tower; give it with --mmproj FILE", m->path);
    if (mp_llama_load(&m->llm, m->path, ex, err) < 0) return -1;
    if (load_text_side(m, err) < 0 || sampling_defaults(m, err) < 0) goto fail;
    if (mp_idefics3_vision_load(&m->vis, mmproj ? mmproj : m->path, ex, err) < 0) goto fail;
    if (m->vis.n_embd_text != m->llm.cfg.n_embd) {
        mp_errf(err, "%s: the vision tower projects to %d values, the text model is %d wide", mmproj ? mmproj : m->path,
                m->vis.n_embd_text, m->llm.cfg.n_embd);
        goto fail;
    }
    if (mp_tokenizer_n_vocab(m->tok) > m->llm.cfg.n_vocab) {
        mp_errf(err, "%s: the tokenizer has %d tokens, the model %d", m->path, mp_tokenizer_n_vocab(m->tok),
                m->llm.cfg.n_vocab);
        goto fail;
    }
    if (special_id(m, "<image>", &m->id_image, err) < 0 || special_id(m, "<fake_token_around_image>", &m->id_fake, err) < 0 ||
        special_id(m, "<global-img>", &m->id_global, err) < 0)
        goto fail;
    if (m->vis.image_token_id >= 0 && m->vis.image_token_id != m->id_image) {
        mp_errf(err, "%s: config image_token_id %d is not the tokenizer's <image> (%d)", m->path, m->vis.image_token_id,
                m->id_image);
        goto fail;
    }
    return 0;
fail:
    mp_vlm_free(m, ex);
    return -1;
}

void mp_vlm_free(mp_vlm *m, mp_exec *ex) {
    mp_idefics3_vision_free(&m->vis, ex);
    if (m->tok) mp_tokenizer_free(m->tok);
    free(m->chat_template);
    mp_llama_free(&m->llm, ex);
    memset(m, 0, sizeof *m);
}

/* ---------------------------------------------------------------- images */

int mp_vlm_preprocess(const mp_vlm *m, const mp_image *img, int split, float **tiles, mp_idefics3_plan *plan,
                      mp_error *err) {
    *tiles = NULL;
    mp_idefics3_params p = m->vis.proc;
    if (split >= 0) p.do_split = split;
    if (p.do_split) {
        if (mp_idefics3_plan_for(img->w, img->h, &p, plan, err) < 0) return -1;
        *tiles = malloc(sizeof(float) * 3 * (size_t)plan->tile_w * plan->tile_h * plan->n_tiles);
        if (!*tiles) return mp_errf(err, "image: out of memory for %d tiles", plan->n_tiles);
        if (mp_idefics3_preprocess(img, &p, *tiles, plan, err) < 0) {
            free(*tiles);
            *tiles = NULL;
            return -1;
        }
        return 0;
    }
    /* no splitting: longest-edge resize, then the tile square, then rescale + normalize */
    mp_idefics3_plan first;
    p.do_split = 0;
    if (mp_idefics3_plan_for(img->w, img->h, &p, &first, err) < 0) return -1;
    mp_image a = {0}, b = {0};
    const mp_image *cur = img;
    int rc = 0;
    if (p.do_resize) {
        rc = mp_image_resize(cur, first.resized_w, first.resized_h, p.norm.resample, &a, err);
        cur = &a;
    }
    if (rc == 0) rc = mp_image_resize(cur, p.tile, p.tile, p.norm.resample, &b, err);
    if (rc == 0) {
        p.do_resize = 0;
        *tiles = malloc(sizeof(float) * 3 * (size_t)p.tile * p.tile);
        rc = *tiles ? mp_idefics3_preprocess(&b, &p, *tiles, plan, err) : mp_errf(err, "image: out of memory");
    }
    if (rc < 0) {
        free(*tiles);
        *tiles = NULL;
    } else {
        plan->resized_w = first.resized_w, plan->resized_h = first.resized_h;
    }
    mp_image_free(&a);
    mp_image_free(&b);
    return rc;
}

/* ---------------------------------------------------------------- prompts */


int mp_vlm_render_chat(const mp_vlm *m, const mp_chat_msg *msgs, int n_msgs, char **out, mp_error *err) {
    *out = NULL;
    if (m->chat_template) {
        mp_chat_params p = mp_chat_default_params();
        p.add_generation_prompt = 1;
        return mp_chat_apply(m->chat_template, msgs, n_msgs, &p, out, err);
    }
    /* SmolVLM's template, rendered: "<|im_start|>" then per message "Role:" (": " unless the content
     * starts with an image), its parts, "<end_of_utterance>\n"; then "Assistant:" */
    mp_strbuf s = {0};
    mp_strbuf_puts(&s, "<|im_start|>");
    for (int i = 0; i < n_msgs; i++) {
        const mp_chat_msg *g = &msgs[i];
        const char *r = g->role ? g->role : "";
        char first[2] = {(char)(r[0] >= 'a' && r[0] <= 'z' ? r[0] - 'a' + 'A' : r[0]), 0};
        if (r[0]) {
            mp_strbuf_puts(&s, first);
            mp_strbuf_puts(&s, r + 1);
        }
        mp_strbuf_puts(&s, g->n_parts > 0 && g->parts[0].type && !strcmp(g->parts[0].type, "image") ? ":" : ": ");
        if (g->n_parts == 0) {
            mp_strbuf_puts(&s, g->content ? g->content : "");
        } else {
            for (int k = 0; k < g->n_parts; k++) {
                const mp_chat_part *q = &g->parts[k];
                if (!q->type) continue;
                if (!strcmp(q->type, "image")) mp_strbuf_puts(&s, "<image>");
                else if (!strcmp(q->type, "text") && q->text) mp_strbuf_puts(&s, q->text);
            }
        }
        mp_strbuf_puts(&s, "<end_of_utterance>\n");
    }
    mp_strbuf_puts(&s, "Assistant:");
    if (s.oom) {
        free(s.p);
        return mp_errf(err, "prompt: out of memory");
    }
    *out = s.p;
    return 0;
}

int mp_vlm_chat_prompt(const mp_vlm *m, const char *text, char **out, mp_error *err) {
    mp_chat_part parts[2] = {{"image", NULL}, {"text", text}};
    mp_chat_msg msg = {"user", NULL, parts, 2};
    return mp_vlm_render_chat(m, &msg, 1, out, err);
}

static void image_layout(const mp_vlm *m, mp_strbuf *s, const mp_idefics3_plan *pl) {
    const char *fake = "<fake_token_around_image>", *img = "<image>";
    char rc[64];
    for (int r = 0; r < pl->rows; r++) {
        for (int c = 0; c < pl->cols; c++) {
            mp_strbuf_puts(s, fake);
            snprintf(rc, sizeof rc, "<row_%d_col_%d>", r + 1, c + 1);
            mp_strbuf_puts(s, rc);
            for (int k = 0; k < m->vis.image_seq_len; k++) mp_strbuf_puts(s, img);
        }
        mp_strbuf_puts(s, "\n");
    }
    if (pl->rows > 0 || pl->cols > 0) mp_strbuf_puts(s, "\n");
    mp_strbuf_puts(s, fake);
    mp_strbuf_puts(s, "<global-img>");
    for (int k = 0; k < m->vis.image_seq_len; k++) mp_strbuf_puts(s, img);
    mp_strbuf_puts(s, fake);
}

int mp_vlm_expand_prompt(const mp_vlm *m, const char *prompt, const mp_idefics3_plan *plans, int n_images,
                         char **out, mp_error *err) {
    *out = NULL;
    mp_strbuf s = {0};
    const char *p = prompt;
    int k = 0;
    for (;;) {
        const char *q = strstr(p, "<image>");
        if (!q) break;
        if (k == n_images) {
            free(s.p);
            return mp_errf(err, "prompt: more <image> places than the %d image(s) given", n_images);
        }
        mp_strbuf_put(&s, p, (size_t)(q - p));
        image_layout(m, &s, &plans[k++]);
        p = q + strlen("<image>");
    }
    mp_strbuf_puts(&s, p);
    if (k != n_images) {
        free(s.p);
        return mp_errf(err, "prompt: %d <image> place(s) for %d image(s)", k, n_images);
    }
    if (s.oom) {
        free(s.p);
        return mp_errf(err, "prompt: out of memory");
    }
    *out = s.p;
    return 0;
}

int mp_vlm_tokenize(const mp_vlm *m, const char *text, int32_t **ids, int *n, int *n_image, mp_error *err) {
    *ids = NULL;
    size_t len = strlen(text);
    int cap = (int)(len < (1u << 28) ? len + 16 : 1u << 28);
    int32_t *buf = malloc(sizeof(int32_t) * (size_t)cap);
    if (!buf) return mp_errf(err, "prompt: out of memory");
    int k = mp_tokenize(m->tok, text, len, 0, 1, buf, cap);
    if (k < 0 || k > cap) {
        free(buf);
        return mp_errf(err, "prompt: tokenization failed");
    }
    int ni = 0;
    for (int i = 0; i < k; i++) ni += buf[i] == m->id_image;
    *ids = buf, *n = k;
    if (n_image) *n_image = ni;
    return 0;
}

int mp_vlm_items(const mp_vlm *m, const int32_t *ids, int n, const float *image_rows, int n_image_rows,
                 int32_t **tokens, float **embd, mp_error *err) {
    const int D = m->llm.cfg.n_embd;
    *tokens = malloc(sizeof(int32_t) * (size_t)n);
    *embd = calloc((size_t)n * D, sizeof(float));
    if (!*tokens || !*embd) {
        free(*tokens), free(*embd);
        *tokens = NULL, *embd = NULL;
        return mp_errf(err, "prompt: out of memory");
    }
    int r = 0;
    for (int i = 0; i < n; i++) {
        if (ids[i] == m->id_image) {
            if (r < n_image_rows) memcpy(*embd + (size_t)i * D, image_rows + (size_t)r * D, sizeof(float) * (size_t)D);
            r++;
            (*tokens)[i] = -1;
        } else {
            (*tokens)[i] = ids[i];
        }
    }
    if (r != n_image_rows) {
        free(*tokens), free(*embd);
        *tokens = NULL, *embd = NULL;
        return mp_errf(err, "prompt: %d image tokens for %d image rows", r, n_image_rows);
    }
    return 0;
}

/* ---------------------------------------------------------------- decoder prompts with images */

void mp_vlm_prompt_free(mp_vlm_prompt *p) {
    free(p->tokens);
    free(p->embd);
    free(p->text);
    memset(p, 0, sizeof *p);
}

void mp_vlm_prompt_to_request(const mp_vlm_prompt *p, mp_gen_request *r) {
    r->n = p->n;
    r->tokens = p->tokens;
    r->embd = p->embd;
}

int mp_vlm_prompt_assemble(const mp_vlm *m, const char *prompt, const mp_idefics3_plan *plans, int n_images,
                           const float *image_rows, mp_vlm_prompt *out, mp_error *err) {
    memset(out, 0, sizeof *out);
    int32_t *ids = NULL;
    int n = 0, n_img = 0, rows = 0, tiles = 0;
    for (int k = 0; k < n_images; k++) tiles += plans[k].n_tiles;
    rows = tiles * m->vis.image_seq_len;
    if (mp_vlm_expand_prompt(m, prompt, plans, n_images, &out->text, err) < 0) return -1;
    if (mp_vlm_tokenize(m, out->text, &ids, &n, &n_img, err) < 0) goto fail;
    if (n_img != rows) {
        /* "<image>" written in the text itself, or a layout the tokenizer did not keep whole */
        mp_errf(err, "prompt: %d <image> tokens for %d image rows (is \"<image>\" in the text?)", n_img, rows);
        goto fail;
    }
    if (mp_vlm_items(m, ids, n, image_rows, rows, &out->tokens, &out->embd, err) < 0) goto fail;
    free(ids);
    if (rows == 0) {
        free(out->embd);
        out->embd = NULL;
    }
    out->n = n;
    out->n_images = n_images, out->n_tiles = tiles, out->n_image_rows = rows;
    return 0;
fail:
    free(ids);
    mp_vlm_prompt_free(out);
    return -1;
}

int mp_vlm_prompt_from_text(const mp_vlm *m, mp_exec *ex, mp_idefics3_state *vs, const mp_image *const *images,
                            int n_images, const char *prompt, int split, mp_vlm_prompt *out, mp_error *err) {
    memset(out, 0, sizeof *out);
    if (n_images < 0) return mp_errf(err, "prompt: %d images", n_images);
    const mp_idefics3_vision *v = &m->vis;
    mp_idefics3_plan *plans = calloc((size_t)n_images + 1, sizeof *plans);
    float **tiles = calloc((size_t)n_images + 1, sizeof *tiles);
    float *pix = NULL, *rows = NULL;
    mp_idefics3_state own = {0};
    if (!vs) vs = &own;
    int rc = -1, total = 0;
    double t0 = now_s();
    if (!plans || !tiles) {
        mp_errf(err, "prompt: out of memory");
        goto done;
    }
    for (int k = 0; k < n_images; k++) {
        mp_error e;
        if (!images[k] || mp_vlm_preprocess(m, images[k], split, &tiles[k], &plans[k], &e) < 0) {
            mp_errf(err, "image %d: %s", k, images[k] ? e.msg : "no image");
            goto done;
        }
        total += plans[k].n_tiles;
    }
    const size_t per_tile = (size_t)3 * v->proc.tile * v->proc.tile;
    const size_t per_rows = (size_t)v->image_seq_len * v->n_embd_text;
    pix = malloc(sizeof(float) * per_tile * (size_t)(total > 0 ? total : 1));
    rows = malloc(sizeof(float) * per_rows * (size_t)(total > 0 ? total : 1));
    if (!pix || !rows) {
        mp_errf(err, "prompt: out of memory for %d tiles", total);
        goto done;
    }
    for (int k = 0, t = 0; k < n_images; k++) {
        memcpy(pix + (size_t)t * per_tile, tiles[k], sizeof(float) * per_tile * (size_t)plans[k].n_tiles);
        t += plans[k].n_tiles;
        free(tiles[k]);
        tiles[k] = NULL;
    }
    double t1 = now_s();
    mp_idefics3_timing tm = {0};
    if (total > 0 && mp_idefics3_encode(v, vs, ex, pix, total, rows, &tm, err) < 0) goto done;
    if (mp_vlm_prompt_assemble(m, prompt, plans, n_images, rows, out, err) < 0) goto done;
    out->t_preprocess = t1 - t0;
    out->t_encode = tm.encode;
    out->t_connector = tm.connector;
    rc = 0;
done:
    if (tiles)
        for (int k = 0; k < n_images; k++) free(tiles[k]);
    free(tiles), free(plans), free(pix), free(rows);
    if (vs == &own) mp_idefics3_state_free(&own, ex);
    return rc;
}

int mp_vlm_prompt_from_chat(const mp_vlm *m, mp_exec *ex, mp_idefics3_state *vs, const mp_image *const *images,
                            int n_images, const mp_chat_msg *msgs, int n_msgs, int split, mp_vlm_prompt *out,
                            mp_error *err) {
    memset(out, 0, sizeof *out);
    char *text = NULL;
    if (mp_vlm_render_chat(m, msgs, n_msgs, &text, err) < 0) return -1;
    int rc = mp_vlm_prompt_from_text(m, ex, vs, images, n_images, text, split, out, err);
    free(text);
    return rc;
}

int mp_vlm_prompt_build(const mp_vlm *m, mp_exec *ex, mp_idefics3_state *vs, const mp_image *const *images,
                        int n_images, const char *text, int split, mp_vlm_prompt *out, mp_error *err) {
    memset(out, 0, sizeof *out);
    if (n_images < 0) return mp_errf(err, "prompt: %d images", n_images);
    mp_chat_part *parts = malloc(sizeof *parts * ((size_t)n_images + 1));
    if (!parts) return mp_errf(err, "prompt: out of memory");
    for (int k = 0; k < n_images; k++) parts[k] = (mp_chat_part){"image", NULL};
    parts[n_images] = (mp_chat_part){"text", text ? text : ""};
    mp_chat_msg msg = {"user", NULL, parts, n_images + 1};
    int rc = mp_vlm_prompt_from_chat(m, ex, vs, images, n_images, &msg, 1, split, out, err);
    free(parts);
    return rc;
}
