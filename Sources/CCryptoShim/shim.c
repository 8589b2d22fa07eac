#include "CCryptoShim.h"

#include <string.h>
#include <sys/random.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <openssl/pkcs12.h>
#include <openssl/ec.h>

void sshca_take_error(char *buf, size_t len) {
    unsigned long code = ERR_get_error();
    if (len == 0) { ERR_clear_error(); return; }
    buf[0] = '\0';
    if (code != 0) ERR_error_string_n(code, buf, len);
    ERR_clear_error();
}

EVP_PKEY *sshca_generate_ed25519(void) {
    return EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
}

EVP_PKEY *sshca_generate_ec(const char *curve) {
    return EVP_PKEY_Q_keygen(NULL, NULL, "EC", curve);
}

EVP_PKEY *sshca_generate_rsa(unsigned int bits) {
    return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
}

static EVP_PKEY *from_params(const char *type, OSSL_PARAM_BLD *bld, int selection) {
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    if (params != NULL && ctx != NULL && EVP_PKEY_fromdata_init(ctx) == 1) {
        if (EVP_PKEY_fromdata(ctx, &pkey, selection, params) != 1) pkey = NULL;
    }
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pkey;
}

int sshca_public_check(EVP_PKEY *pkey) {
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    int ok = ctx != NULL && EVP_PKEY_public_check(ctx) == 1;
    EVP_PKEY_CTX_free(ctx);
    return ok;
}

EVP_PKEY *sshca_ec_public_key(const char *curve, const uint8_t *point, size_t point_len) {
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    EVP_PKEY *pkey = NULL;
    if (bld == NULL) return NULL;
    if (OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, curve, 0) == 1 &&
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, point_len) == 1) {
        pkey = from_params("EC", bld, EVP_PKEY_PUBLIC_KEY);
    }
    OSSL_PARAM_BLD_free(bld);
    if (pkey != NULL && !sshca_public_check(pkey)) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
    return pkey;
}

EVP_PKEY *sshca_ec_private_key(const char *curve, const uint8_t *priv, size_t priv_len,
                               const uint8_t *point, size_t point_len) {
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    BIGNUM *d = BN_bin2bn(priv, (int)priv_len, NULL);
    EVP_PKEY *pkey = NULL;
    if (bld != NULL && d != NULL &&
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, curve, 0) == 1 &&
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, point_len) == 1 &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, d) == 1) {
        pkey = from_params("EC", bld, EVP_PKEY_KEYPAIR);
    }
    BN_clear_free(d);
    OSSL_PARAM_BLD_free(bld);
    return pkey;
}

EVP_PKEY *sshca_rsa_public_key(const uint8_t *n, size_t n_len, const uint8_t *e, size_t e_len) {
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    BIGNUM *bn_n = BN_bin2bn(n, (int)n_len, NULL);
    BIGNUM *bn_e = BN_bin2bn(e, (int)e_len, NULL);
    EVP_PKEY *pkey = NULL;
    if (bld != NULL && bn_n != NULL && bn_e != NULL &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) == 1 &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e) == 1) {
        pkey = from_params("RSA", bld, EVP_PKEY_PUBLIC_KEY);
    }
    BN_free(bn_n);
    BN_free(bn_e);
    OSSL_PARAM_BLD_free(bld);
    return pkey;
}

long sshca_get_bn_param(EVP_PKEY *pkey, const char *name, uint8_t *out, size_t out_len) {
    BIGNUM *bn = NULL;
    if (EVP_PKEY_get_bn_param(pkey, name, &bn) != 1 || bn == NULL) { ERR_clear_error(); return 0; }
    int n = BN_num_bytes(bn);
    long result = -1;
    if ((size_t)n <= out_len) result = BN_bn2bin(bn, out);
    BN_clear_free(bn);
    return result;
}

long sshca_get_octet_param(EVP_PKEY *pkey, const char *name, uint8_t *out, size_t out_len) {
    size_t written = 0;
    if (EVP_PKEY_get_octet_string_param(pkey, name, out, out_len, &written) != 1) {
        ERR_clear_error();
        return out_len == 0 ? 0 : -1;
    }
    return (long)written;
}

long sshca_get_utf8_param(EVP_PKEY *pkey, const char *name, char *out, size_t out_len) {
    size_t written = 0;
    if (EVP_PKEY_get_utf8_string_param(pkey, name, out, out_len, &written) != 1) {
        ERR_clear_error();
        return 0;
    }
    return (long)written;
}

static char *bio_to_string(BIO *bio, size_t *out_len) {
    char *data = NULL;
    long len = BIO_get_mem_data(bio, &data);
    if (len <= 0) return NULL;
    char *copy = OPENSSL_malloc((size_t)len + 1);
    if (copy == NULL) return NULL;
    memcpy(copy, data, (size_t)len);
    copy[len] = '\0';
    *out_len = (size_t)len;
    return copy;
}

char *sshca_private_key_to_pem(EVP_PKEY *pkey, const char *pass, size_t pass_len,
                               uint64_t scrypt_n, uint64_t scrypt_r, uint64_t scrypt_p, size_t *out_len) {
    BIO *bio = BIO_new(BIO_s_mem());
    char *result = NULL;
    if (bio == NULL) return NULL;
    if (pass == NULL) {
        if (PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL) == 1)
            result = bio_to_string(bio, out_len);
    } else {
        PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(pkey);
        X509_ALGOR *alg = PKCS5_pbe2_set_scrypt(EVP_aes_256_cbc(), NULL, 0, NULL,
                                                scrypt_n, scrypt_r, scrypt_p);
        X509_SIG *sig = NULL;
        if (p8 != NULL && alg != NULL) {
            sig = PKCS8_set0_pbe(pass, (int)pass_len, p8, alg);
            if (sig != NULL) alg = NULL; /* now owned by sig */
        }
        if (sig != NULL && PEM_write_bio_PKCS8(bio, sig) == 1)
            result = bio_to_string(bio, out_len);
        X509_SIG_free(sig);
        X509_ALGOR_free(alg);
        PKCS8_PRIV_KEY_INFO_free(p8);
    }
    BIO_free(bio);
    return result;
}

struct pass_holder { const char *pass; size_t len; int asked; };

static int pass_cb(char *buf, int size, int rwflag, void *u) {
    (void)rwflag;
    struct pass_holder *h = u;
    h->asked = 1;
    if (h->pass == NULL || h->len > (size_t)size) return -1;
    memcpy(buf, h->pass, h->len);
    return (int)h->len;
}

EVP_PKEY *sshca_private_key_from_pem(const char *pem, size_t pem_len, const char *pass, size_t pass_len,
                                     int *status) {
    BIO *bio = BIO_new_mem_buf(pem, (int)pem_len);
    struct pass_holder h = { pass, pass_len, 0 };
    EVP_PKEY *pkey = NULL;
    if (bio == NULL) { *status = 2; return NULL; }
    pkey = PEM_read_bio_PrivateKey(bio, NULL, pass_cb, &h);
    BIO_free(bio);
    if (pkey != NULL) { *status = 0; return pkey; }
    *status = (h.asked && pass == NULL) ? 1 : 2;
    return NULL;
}

int sshca_pem_is_encrypted(const char *pem, size_t pem_len) {
    static const char marker[] = "-----BEGIN ENCRYPTED PRIVATE KEY-----";
    size_t m = sizeof(marker) - 1;
    for (size_t i = 0; i + m <= pem_len; i++)
        if (memcmp(pem + i, marker, m) == 0) return 1;
    return 0;
}

int sshca_ecdsa_der_to_rs(const uint8_t *der, size_t der_len, uint8_t *r, size_t *r_len,
                          uint8_t *s, size_t *s_len) {
    const unsigned char *p = der;
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
    if (sig == NULL) return 0;
    const BIGNUM *br = NULL, *bs = NULL;
    ECDSA_SIG_get0(sig, &br, &bs);
    int ok = 0;
    if ((size_t)BN_num_bytes(br) <= *r_len && (size_t)BN_num_bytes(bs) <= *s_len) {
        *r_len = (size_t)BN_bn2bin(br, r);
        *s_len = (size_t)BN_bn2bin(bs, s);
        ok = 1;
    }
    ECDSA_SIG_free(sig);
    return ok;
}

int sshca_ecdsa_rs_to_der(const uint8_t *r, size_t r_len, const uint8_t *s, size_t s_len,
                          uint8_t *der, size_t *der_len) {
    ECDSA_SIG *sig = ECDSA_SIG_new();
    BIGNUM *br = BN_bin2bn(r, (int)r_len, NULL);
    BIGNUM *bs = BN_bin2bn(s, (int)s_len, NULL);
    int ok = 0;
    if (sig != NULL && br != NULL && bs != NULL && ECDSA_SIG_set0(sig, br, bs) == 1) {
        br = bs = NULL; /* owned by sig */
        int len = i2d_ECDSA_SIG(sig, NULL);
        if (len > 0 && (size_t)len <= *der_len) {
            unsigned char *p = der;
            *der_len = (size_t)i2d_ECDSA_SIG(sig, &p);
            ok = 1;
        }
    }
    BN_free(br);
    BN_free(bs);
    ECDSA_SIG_free(sig);
    return ok;
}

long sshca_random_bytes(void *buf, size_t len) {
    return (long)getrandom(buf, len, 0);
}

static int add_extension(X509 *cert, int nid, const char *value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, cert, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (ext == NULL) return 0;
    int ok = X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    return ok;
}

char *sshca_self_signed_certificate(EVP_PKEY *pkey, const char *common_name, const char *san,
                                    const uint8_t *serial, size_t serial_len, long days, size_t *out_len) {
    X509 *cert = X509_new();
    BIGNUM *bn = BN_bin2bn(serial, (int)serial_len, NULL);
    BIO *bio = NULL;
    char *result = NULL;
    int ok = cert != NULL && bn != NULL
        && X509_set_version(cert, X509_VERSION_3) == 1
        && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) != NULL
        && X509_gmtime_adj(X509_getm_notBefore(cert), -300) != NULL
        && X509_time_adj_ex(X509_getm_notAfter(cert), (int)days, 0, NULL) != NULL
        && X509_set_pubkey(cert, pkey) == 1;
    if (ok) {
        X509_NAME *name = X509_get_subject_name(cert);
        ok = X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)common_name, -1, -1, 0) == 1
            && X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)"sshca", -1, -1, 0) == 1
            && X509_set_issuer_name(cert, name) == 1
            && add_extension(cert, NID_basic_constraints, "critical,CA:TRUE")
            && add_extension(cert, NID_key_usage, "critical,digitalSignature,keyCertSign")
            && add_extension(cert, NID_ext_key_usage, "serverAuth")
            && add_extension(cert, NID_subject_key_identifier, "hash")
            && add_extension(cert, NID_subject_alt_name, san)
            && X509_sign(cert, pkey, EVP_sha256()) > 0;
    }
    if (ok && (bio = BIO_new(BIO_s_mem())) != NULL && PEM_write_bio_X509(bio, cert) == 1)
        result = bio_to_string(bio, out_len);
    BIO_free(bio);
    BN_free(bn);
    X509_free(cert);
    return result;
}
