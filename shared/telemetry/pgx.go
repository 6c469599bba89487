package telemetry

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// PgxTracer makes PostgreSQL queries, batches and copies child spans of
// the span in their context (pgx.ConnConfig.Tracer). It needs no provider
// of its own: a query starts a span only under a traced parent, through
// that parent's provider, so background work (batch flushes, cache
// refreshes) adds no root spans of its own, and a pool shared by several
// functions (`gamemetrics dev`) traces each under its own service. The SQL
// text is recorded; arguments are not (they hold player data).
type PgxTracer struct{}

var (
	_ pgx.QueryTracer    = PgxTracer{}
	_ pgx.BatchTracer    = PgxTracer{}
	_ pgx.CopyFromTracer = PgxTracer{}
)

func (PgxTracer) start(ctx context.Context, conn *pgx.Conn, name string, attrs ...attribute.KeyValue) context.Context {
	parent := trace.SpanFromContext(ctx)
	if !parent.SpanContext().IsValid() {
		return ctx // untraced: no allocation, no span
	}
	attrs = append(attrs, semconv.DBSystemNamePostgreSQL)
	if conn != nil {
		attrs = append(attrs, semconv.DBNamespace(conn.Config().Database))
	}
	ctx, span := parent.TracerProvider().Tracer(Instrumentation).Start(ctx, name,
		trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	return context.WithValue(ctx, spanKey{}, span)
}

// spanKey marks the context pgx hands back to the end hook with the span
// the start hook began (the parent's span is not ours to end).
type spanKey struct{}

func end(ctx context.Context, err error) {
	if span, ok := ctx.Value(spanKey{}).(trace.Span); ok {
		EndSpan(span, err)
	}
}

// operation is the first word of a statement: SELECT, INSERT, WITH...
func operation(sql string) string {
	sql = strings.TrimSpace(sql)
	if i := strings.IndexAny(sql, " \t\n("); i > 0 {
		sql = sql[:i]
	}
	return strings.ToUpper(sql)
}

func (t PgxTracer) TraceQueryStart(ctx context.Context, conn *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	op := operation(data.SQL)
	return t.start(ctx, conn, "postgresql "+op, semconv.DBOperationName(op), semconv.DBQueryText(data.SQL))
}

func (PgxTracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryEndData) {
	end(ctx, data.Err)
}

func (t PgxTracer) TraceBatchStart(ctx context.Context, conn *pgx.Conn, data pgx.TraceBatchStartData) context.Context {
	n := 0
	if data.Batch != nil {
		n = data.Batch.Len()
	}
	return t.start(ctx, conn, "postgresql batch", semconv.DBOperationName("BATCH"), semconv.DBOperationBatchSize(n))
}

func (PgxTracer) TraceBatchQuery(ctx context.Context, _ *pgx.Conn, data pgx.TraceBatchQueryData) {
	if span := trace.SpanFromContext(ctx); span.IsRecording() && data.Err != nil {
		span.RecordError(data.Err, trace.WithAttributes(semconv.DBQueryText(data.SQL)))
	}
}

func (PgxTracer) TraceBatchEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceBatchEndData) {
	end(ctx, data.Err)
}

func (t PgxTracer) TraceCopyFromStart(ctx context.Context, conn *pgx.Conn, data pgx.TraceCopyFromStartData) context.Context {
	table := data.TableName.Sanitize()
	return t.start(ctx, conn, "postgresql COPY "+table, semconv.DBOperationName("COPY"), semconv.DBCollectionName(table))
}

func (PgxTracer) TraceCopyFromEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceCopyFromEndData) {
	end(ctx, data.Err)
}
