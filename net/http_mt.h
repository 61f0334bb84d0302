/*
 * The threaded net_http's engine (http_thread.c), used by http_client.c
 * only: net_http_new_threaded in net.h is the interface.
 */
#ifndef RN_NET_HTTP_MT_H
#define RN_NET_HTTP_MT_H
#include "net/net.h"

typedef struct net_http_mt net_http_mt;

int http_mt_new(uv_loop_t *loop, net_http_mt **out);
int http_mt_request(net_http_mt *m, const net_http_req *req, net_http_cb cb,
		    void *arg);
size_t http_mt_active(const net_http_mt *m);
/*
 * net_http_request on an inline client without copying req->body: the
 * caller keeps it valid and unchanged until cb has run. The worker's own
 * jobs hold their body that long; the copy was a second one per push.
 */
int http_request_body_kept(net_http *h, const net_http_req *req,
			   net_http_cb cb, void *arg);
void http_mt_free(net_http_mt *m);
#endif
