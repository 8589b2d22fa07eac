#ifndef SSHCA_CCRYPTOSHIM_H
#define SSHCA_CCRYPTOSHIM_H
/*
 * A small C shim over OpenSSL 3 libcrypto: it exists for the parts Swift cannot call directly
 * (variadic functions, macros, OSSL_PARAM building). Everything else is called from Swift.
 */
#include <stddef.h>
#include <stdint.h>
#include <openssl/evp.h>

/* Copies the oldest queued OpenSSL error (or "" if none) into buf and clears the queue. */
void sshca_take_error(char *buf, size_t len);

/* Key generation. curve is "P-256", "P-384" or "P-521". NULL on failure. */
EVP_PKEY *sshca_generate_ed25519(void);
EVP_PKEY *sshca_generate_ec(const char *curve);
EVP_PKEY *sshca_generate_rsa(unsigned int bits);

/* Public keys from their SSH wire components. NULL on failure (including a point not on the curve). */
EVP_PKEY *sshca_ec_public_key(const char *curve, const uint8_t *point, size_t point_len);
EVP_PKEY *sshca_rsa_public_key(const uint8_t *n, size_t n_len, const uint8_t *e, size_t e_len);
/* ECDSA private key from scalar and point (for ssh-agent export round trips and tests). */
EVP_PKEY *sshca_ec_private_key(const char *curve, const uint8_t *priv, size_t priv_len,
                               const uint8_t *point, size_t point_len);

/* 1 if the public part checks out (point on curve, sane RSA modulus and exponent). */
int sshca_public_check(EVP_PKEY *pkey);

/* Big-number and octet parameters, big-endian, unsigned, no leading zeros.
 * Returns the length written, 0 if absent, -1 if out is too small. */
long sshca_get_bn_param(EVP_PKEY *pkey, const char *name, uint8_t *out, size_t out_len);
long sshca_get_octet_param(EVP_PKEY *pkey, const char *name, uint8_t *out, size_t out_len);
long sshca_get_utf8_param(EVP_PKEY *pkey, const char *name, char *out, size_t out_len);

/* PEM PKCS#8. With a passphrase: PBES2, AES-256-CBC, scrypt (N, r, p). Returns malloc'd text. */
char *sshca_private_key_to_pem(EVP_PKEY *pkey, const char *pass, size_t pass_len,
                               uint64_t scrypt_n, uint64_t scrypt_r, uint64_t scrypt_p, size_t *out_len);
/* Reads a PEM private key. *status: 0 ok, 1 needs a passphrase, 2 wrong passphrase or bad data. */
EVP_PKEY *sshca_private_key_from_pem(const char *pem, size_t pem_len, const char *pass, size_t pass_len,
                                     int *status);
/* 1 if the PEM text is an encrypted PKCS#8 private key. */
int sshca_pem_is_encrypted(const char *pem, size_t pem_len);

/* ECDSA signatures: DER <-> (r, s) big-endian. Return 1 on success. */
int sshca_ecdsa_der_to_rs(const uint8_t *der, size_t der_len, uint8_t *r, size_t *r_len,
                          uint8_t *s, size_t *s_len);
int sshca_ecdsa_rs_to_der(const uint8_t *r, size_t r_len, const uint8_t *s, size_t s_len,
                          uint8_t *der, size_t *der_len);

/* A self-signed X.509 certificate for TLS (the service's own, which clients pin as their
 * --ca-bundle): subject CN = the first name, subjectAltName = san ("DNS:a,IP:127.0.0.1"),
 * basicConstraints CA:TRUE (it is its own root), serverAuth, valid from now - 5 min for `days`.
 * Signed with pkey (SHA-256). Returns malloc'd PEM text, NULL on failure. */
char *sshca_self_signed_certificate(EVP_PKEY *pkey, const char *common_name, const char *san,
                                    const uint8_t *serial, size_t serial_len, long days, size_t *out_len);

/* getrandom(2): Swift's Glibc module does not export it. */
long sshca_random_bytes(void *buf, size_t len);

#endif
