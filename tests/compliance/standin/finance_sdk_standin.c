/* A stand-in for WeCom's chat-archive Finance SDK (libWeWorkFinanceSdk_C.so): the same C interface,
 * built by the test suite, serving chat data from files so that Siyu's adapter is tested through
 * ctypes exactly as it runs against the real library.
 *
 * Where the data comes from: the directory in the environment variable FINANCE_STANDIN_DIR, read at
 * Init: `secret` (the archive secret Init must be given), `chatdata.jsonl` (one chat-data item per
 * line, each line beginning with {"seq":N,), and `media/<sdkfileid>` (media files).
 * DecryptData's cipher here: encrypt_chat_msg is the hex of ("OK:" + message) XOR the key, repeated;
 * a wrong key is answered 10006 as the real SDK answers a decryption failure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct { char dir[1024]; int ready; } WeWorkFinanceSdk_t;
typedef struct { char *buf; int len; } Slice_t;
typedef struct { char *outindexbuf; int out_len; char *data; int data_len; int is_finish; } MediaData_t;

#define MEDIA_CHUNK 64 /* small on purpose: the adapter must loop over chunks */

WeWorkFinanceSdk_t *NewSdk(void) { return calloc(1, sizeof(WeWorkFinanceSdk_t)); }
void DestroySdk(WeWorkFinanceSdk_t *sdk) { free(sdk); }
Slice_t *NewSlice(void) { return calloc(1, sizeof(Slice_t)); }
void FreeSlice(Slice_t *s) { if (s) { free(s->buf); free(s); } }
char *GetContentFromSlice(Slice_t *s) { return s->buf; }
int GetSliceLen(Slice_t *s) { return s->len; }
MediaData_t *NewMediaData(void) { return calloc(1, sizeof(MediaData_t)); }
void FreeMediaData(MediaData_t *m) { if (m) { free(m->outindexbuf); free(m->data); free(m); } }
char *GetOutIndexBuf(MediaData_t *m) { return m->outindexbuf; }
char *GetData(MediaData_t *m) { return m->data; }
int GetIndexLen(MediaData_t *m) { return m->out_len; }
int GetDataLen(MediaData_t *m) { return m->data_len; }
int IsMediaDataFinish(MediaData_t *m) { return m->is_finish; }

static char *read_file(const char *path, long *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc(n + 1);
    if (fread(buf, 1, n, f) != (size_t)n) { fclose(f); free(buf); return NULL; }
    fclose(f);
    buf[n] = 0;
    if (size) *size = n;
    return buf;
}

static void set_slice(Slice_t *s, const char *text, int len) {
    free(s->buf);
    s->buf = malloc(len + 1);
    memcpy(s->buf, text, len);
    s->buf[len] = 0;
    s->len = len;
}

int Init(WeWorkFinanceSdk_t *sdk, const char *corpid, const char *secret) {
    const char *dir = getenv("FINANCE_STANDIN_DIR");
    if (!sdk || !corpid || !secret || !dir || !*corpid) return 10000;
    char path[1100];
    snprintf(path, sizeof path, "%s/secret", dir);
    char *expected = read_file(path, NULL);
    if (!expected) return 10003;
    size_t n = strcspn(expected, "\r\n");
    int ok = strlen(secret) == n && strncmp(secret, expected, n) == 0;
    free(expected);
    if (!ok) return 10004; /* WeCom: wrong secret */
    snprintf(sdk->dir, sizeof sdk->dir, "%s", dir);
    sdk->ready = 1;
    return 0;
}

int GetChatData(WeWorkFinanceSdk_t *sdk, unsigned long long seq, unsigned int limit, const char *proxy,
                const char *passwd, int timeout, Slice_t *chatDatas) {
    (void)proxy; (void)passwd; (void)timeout;
    if (!sdk || !sdk->ready || !chatDatas || limit == 0 || limit > 1000) return 10000;
    char path[1100];
    snprintf(path, sizeof path, "%s/chatdata.jsonl", sdk->dir);
    long size = 0;
    char *all = read_file(path, &size);
    if (!all) { all = calloc(1, 1); size = 0; }
    char *out = malloc(size + 64);
    int len = sprintf(out, "{\"errcode\":0,\"errmsg\":\"ok\",\"chatdata\":[");
    unsigned int taken = 0;
    for (char *line = all; *line && taken < limit;) {
        char *end = strchr(line, '\n');
        int line_len = end ? (int)(end - line) : (int)strlen(line);
        unsigned long long item_seq = 0;
        if (line_len > 0 && sscanf(line, "{\"seq\":%llu", &item_seq) == 1 && item_seq > seq) {
            if (taken++) out[len++] = ',';
            memcpy(out + len, line, line_len);
            len += line_len;
        }
        if (!end) break;
        line = end + 1;
    }
    len += sprintf(out + len, "]}");
    set_slice(chatDatas, out, len);
    free(out);
    free(all);
    return 0;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int DecryptData(const char *encrypt_key, const char *encrypt_msg, Slice_t *msg) {
    if (!encrypt_key || !encrypt_msg || !msg || !*encrypt_key) return 10000;
    size_t hex_len = strlen(encrypt_msg), key_len = strlen(encrypt_key);
    if (hex_len % 2) return 10002;
    size_t n = hex_len / 2;
    char *plain = malloc(n + 1);
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(encrypt_msg[2 * i]), lo = hexval(encrypt_msg[2 * i + 1]);
        if (hi < 0 || lo < 0) { free(plain); return 10002; }
        plain[i] = (char)(((hi << 4) | lo) ^ encrypt_key[i % key_len]);
    }
    plain[n] = 0;
    if (n < 3 || strncmp(plain, "OK:", 3) != 0) { free(plain); return 10006; }
    set_slice(msg, plain + 3, (int)n - 3);
    free(plain);
    return 0;
}

int GetMediaData(WeWorkFinanceSdk_t *sdk, const char *indexbuf, const char *sdkFileid, const char *proxy,
                 const char *passwd, int timeout, MediaData_t *media_data) {
    (void)proxy; (void)passwd; (void)timeout;
    if (!sdk || !sdk->ready || !sdkFileid || !*sdkFileid || !media_data || strchr(sdkFileid, '/')) return 10000;
    char path[1200];
    snprintf(path, sizeof path, "%s/media/%s", sdk->dir, sdkFileid);
    long size = 0;
    char *all = read_file(path, &size);
    if (!all) return 10005; /* WeCom: bad sdkfileid */
    long offset = (indexbuf && *indexbuf) ? atol(indexbuf) : 0;
    if (offset < 0 || offset > size) { free(all); return 10000; }
    long n = size - offset < MEDIA_CHUNK ? size - offset : MEDIA_CHUNK;
    free(media_data->data);
    free(media_data->outindexbuf);
    media_data->data = malloc(n + 1);
    memcpy(media_data->data, all + offset, n);
    media_data->data_len = (int)n;
    media_data->outindexbuf = malloc(32);
    media_data->out_len = sprintf(media_data->outindexbuf, "%ld", offset + n);
    media_data->is_finish = offset + n >= size;
    free(all);
    return 0;
}
