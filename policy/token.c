/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Qube specifications ("tokens") of the policy language and the character
 * classes shared by the loader and the evaluator.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qpolicy-internal.h"

struct tok_exact {
	const char *text;
	enum qpol_tok_kind kind;
	unsigned ctx;
};

struct tok_prefix {
	const char *prefix;
	enum qpol_tok_kind kind;
	unsigned ctx;
};

#define CTX_S QPOL_CTX_SOURCE
#define CTX_T QPOL_CTX_TARGET
#define CTX_R QPOL_CTX_REDIRECT
#define CTX_Q QPOL_CTX_REQUEST

/* Where each keyword may appear, as in Qubes OS 4.3. */
static const struct tok_exact tok_exacts[] = {
	{ "*", QPOL_TOK_WILDCARD, CTX_S | CTX_T },
	{ "@adminvm", QPOL_TOK_ADMINVM, CTX_S | CTX_T | CTX_R | CTX_Q },
	{ "@anyvm", QPOL_TOK_ANYVM, CTX_S | CTX_T },
	{ "@default", QPOL_TOK_DEFAULT, CTX_T | CTX_Q },
	{ "@dispvm", QPOL_TOK_DISPVM, CTX_T | CTX_R | CTX_Q },
};

/* Checked in this order; a value starting with '@' belongs to a longer
 * prefix (@dispvm:@tag:) or is invalid. */
static const struct tok_prefix tok_prefixes[] = {
	{ "@type:", QPOL_TOK_TYPE, CTX_S | CTX_T },
	{ "@tag:", QPOL_TOK_TAG, CTX_S | CTX_T },
	{ "@dispvm:", QPOL_TOK_DISPVM_NAME, CTX_S | CTX_T | CTX_R | CTX_Q },
	{ "@dispvm:@tag:", QPOL_TOK_DISPVM_TAG, CTX_S | CTX_T },
};

static const char *ctx_name(unsigned ctx)
{
	switch (ctx) {
	case QPOL_CTX_SOURCE:
		return "source";
	case QPOL_CTX_TARGET:
		return "target";
	case QPOL_CTX_REDIRECT:
		return "redirect";
	case QPOL_CTX_REQUEST:
		return "requested target";
	default:
		return "qube";
	}
}

static const char *ctx_article(unsigned ctx)
{
	switch (ctx) {
	case QPOL_CTX_SOURCE:
		return "a source";
	case QPOL_CTX_TARGET:
		return "a target";
	case QPOL_CTX_REDIRECT:
		return "a redirect target (target=, default_target=)";
	case QPOL_CTX_REQUEST:
		return "a requested target";
	default:
		return "a qube";
	}
}

char *qpol_vmsg(const char *fmt, va_list ap)
{
	char *msg = NULL;

	if (vasprintf(&msg, fmt, ap) < 0)
		return NULL;
	for (char *c = msg; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = '?';
	return msg;
}

__attribute__((format(printf, 2, 3)))
static int tok_fail(char **ret_msg, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	char *msg = qpol_vmsg(fmt, ap);
	va_end(ap);
	if (!msg)
		return -ENOMEM;
	*ret_msg = msg;
	return -EINVAL;
}

int qpol_token_parse(const char *text, unsigned ctx, struct qpol_token *ret, char **ret_msg)
{
	struct qpol_token tok = { .kind = QPOL_TOK_NAME, .value = NULL };

	if (text[0] == '\0')
		return tok_fail(ret_msg, "invalid empty %s token", ctx_name(ctx));

	if (text[0] != '@' && strcmp(text, "*") != 0) {
		/* A name or uuid:UUID, taken as written (as Qubes does: one
		 * that names no qube never matches).  "dom0" and the nil
		 * UUID stay names too: qpol_token_is_dom0(). */
		tok.value = strdup(text);
		if (!tok.value)
			return -ENOMEM;
		*ret = tok;
		return 0;
	}

	for (size_t i = 0; i < sizeof(tok_exacts) / sizeof(tok_exacts[0]); i++) {
		if (!(tok_exacts[i].ctx & ctx))
			continue;
		if (strcmp(text, tok_exacts[i].text) == 0) {
			ret->kind = tok_exacts[i].kind;
			ret->value = NULL;
			return 0;
		}
	}
	for (size_t i = 0; i < sizeof(tok_prefixes) / sizeof(tok_prefixes[0]); i++) {
		const struct tok_prefix *p = &tok_prefixes[i];
		size_t plen = strlen(p->prefix);
		if (!(p->ctx & ctx) || strncmp(text, p->prefix, plen) != 0)
			continue;
		const char *value = text + plen;
		if (value[0] == '\0')
			return tok_fail(ret_msg, "invalid empty %s token: %s", p->prefix, text);
		if (value[0] == '@')
			continue;
		tok.kind = p->kind;
		tok.value = strdup(value);
		if (!tok.value)
			return -ENOMEM;
		*ret = tok;
		return 0;
	}
	/* A keyword used where it does not belong gets a clearer message. */
	for (size_t i = 0; i < sizeof(tok_exacts) / sizeof(tok_exacts[0]); i++)
		if (strcmp(text, tok_exacts[i].text) == 0)
			return tok_fail(ret_msg, "%s cannot be used as %s", text, ctx_article(ctx));
	for (size_t i = sizeof(tok_prefixes) / sizeof(tok_prefixes[0]); i > 0; i--) {
		const struct tok_prefix *p = &tok_prefixes[i - 1];
		size_t plen = strlen(p->prefix);
		if (strncmp(text, p->prefix, plen) == 0 && text[plen] != '@' && text[plen] != '\0')
			return tok_fail(ret_msg, "%s... cannot be used as %s", p->prefix,
					ctx_article(ctx));
	}
	return tok_fail(ret_msg, "invalid %s token: %s", ctx_name(ctx), text);
}

bool qpol_token_is_dom0(const struct qpol_token *tok)
{
	return tok->kind == QPOL_TOK_ADMINVM || (tok->kind == QPOL_TOK_NAME && qpol_is_dom0(tok->value));
}

void qpol_token_finish(struct qpol_token *tok)
{
	if (!tok)
		return;
	free(tok->value);
	tok->value = NULL;
}

char *qpol_token_to_string(const struct qpol_token *tok)
{
	const char *fixed = NULL, *prefix = NULL;
	char *s = NULL;

	switch (tok->kind) {
	case QPOL_TOK_NAME:
		return strdup(tok->value);
	case QPOL_TOK_WILDCARD:
		fixed = "*";
		break;
	case QPOL_TOK_ANYVM:
		fixed = "@anyvm";
		break;
	case QPOL_TOK_ADMINVM:
		fixed = "@adminvm";
		break;
	case QPOL_TOK_DEFAULT:
		fixed = "@default";
		break;
	case QPOL_TOK_DISPVM:
		fixed = "@dispvm";
		break;
	case QPOL_TOK_DISPVM_NAME:
		prefix = "@dispvm:";
		break;
	case QPOL_TOK_DISPVM_TAG:
		prefix = "@dispvm:@tag:";
		break;
	case QPOL_TOK_TAG:
		prefix = "@tag:";
		break;
	case QPOL_TOK_TYPE:
		prefix = "@type:";
		break;
	}
	if (fixed)
		return strdup(fixed);
	if (asprintf(&s, "%s%s", prefix, tok->value) < 0)
		return NULL;
	return s;
}
