/* json.c — typed field access over cJSON, with errors that name the key. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>

#include "base.h"

static const cJSON *json_field(const cJSON *obj, const char *key) {
    return cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
}

int json_get_str(const cJSON *obj, const char *key, bool required,
                 const char **out, tailor_error *err) {
    const cJSON *v = json_field(obj, key);
    if (!v || cJSON_IsNull(v)) {
        if (required) return err_set(err, TAILOR_EDATA, "field '%s': missing", key);
        return 0;
    }
    if (!cJSON_IsString(v))
        return err_set(err, TAILOR_EDATA, "field '%s': expected a string", key);
    *out = v->valuestring;
    return 0;
}

int json_get_f64(const cJSON *obj, const char *key, bool required, double *out,
                 tailor_error *err) {
    const cJSON *v = json_field(obj, key);
    if (!v || cJSON_IsNull(v)) {
        if (required) return err_set(err, TAILOR_EDATA, "field '%s': missing", key);
        return 0;
    }
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return err_set(err, TAILOR_EDATA, "field '%s': expected a number", key);
    *out = v->valuedouble;
    return 0;
}

int json_get_i64(const cJSON *obj, const char *key, bool required, int64_t *out,
                 tailor_error *err) {
    double d = 0;
    const cJSON *v = json_field(obj, key);
    if (!v || cJSON_IsNull(v)) {
        if (required) return err_set(err, TAILOR_EDATA, "field '%s': missing", key);
        return 0;
    }
    int rc = json_get_f64(obj, key, true, &d, err);
    if (rc) return rc;
    if (d != floor(d) || fabs(d) > 9007199254740992.0)
        return err_set(err, TAILOR_EDATA, "field '%s': expected an integer", key);
    *out = (int64_t)d;
    return 0;
}

char *json_print(const cJSON *obj) {
    char *s = cJSON_PrintUnformatted(obj);
    if (!s) base_oom(0);
    return s;
}
