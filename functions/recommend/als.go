package recommend

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/mat"
)

// ALS is implicit-feedback matrix factorisation (Hu, Koren and Volinsky,
// ICDM 2008) trained by alternating least squares with a few conjugate
// gradient steps per row instead of an exact solve (Takács, Pilászy and
// Tikk, RecSys 2011), which makes an iteration linear in the number of
// interactions for a fixed number of factors. A player's entries are
// confidences c = 1 + Alpha·x on a preference of 1; everything else is a
// preference of 0 with confidence 1.
//
// Only the item factors are kept: a player's factors are solved from their
// current items at request time (fold-in, an exact k × k solve), so a new
// interaction changes the answer without retraining and the model holds no
// per-player data.
type ALS struct {
	N, K   int
	Y      []float32 // item factors, row i = Y[i*K:(i+1)*K]
	YtY    []float64 // YᵀY + λI, K × K
	Alpha  float32
	Lambda float64

	scratch sync.Pool // of *alsScratch
	invOnce sync.Once
	inv     []float64 // (YᵀY + λI)⁻¹, see inverse
}

// ALSParams are the hyperparameters of TrainALS.
type ALSParams struct {
	Factors    int
	Lambda     float64
	Alpha      float32
	Iterations int
	CGSteps    int
	Seed       uint64
}

// DefaultALSParams suit catalogues of thousands of items.
func DefaultALSParams() ALSParams {
	return ALSParams{Factors: 64, Lambda: 30, Alpha: 10, Iterations: 10, CGSteps: 3, Seed: 1}
}

// TrainALS factorises x (players × items) with p, using workers goroutines.
func TrainALS(x *Matrix, p ALSParams, workers int) *ALS {
	k := p.Factors
	xt := x.Transpose()
	r := rand.New(rand.NewPCG(p.Seed, p.Seed^0x5eed))
	init := func(rows int) []float32 {
		f := make([]float32, rows*k)
		scale := 0.01 / math.Sqrt(float64(k))
		for i := range f {
			f[i] = float32(r.NormFloat64() * scale)
		}
		return f
	}
	users, items := init(x.Rows), init(x.Cols)
	for range p.Iterations {
		solveSide(x, users, items, k, p, workers)
		solveSide(xt, items, users, k, p, workers)
	}
	return &ALS{N: x.Cols, K: k, Y: items, YtY: gramOf(items, k, p.Lambda), Alpha: p.Alpha, Lambda: p.Lambda}
}

// gramOf returns FᵀF + λI for factors F (rows × k), in float64 (one
// matrix multiplication: blas32 is fast enough, and the sum is then
// converted).
func gramOf(f []float32, k int, lambda float64) []float64 {
	rows := len(f) / k
	g := make([]float32, k*k)
	if rows > 0 {
		fm := blas32.General{Rows: rows, Cols: k, Stride: k, Data: f}
		blas32.Gemm(blas.Trans, blas.NoTrans, 1, fm, fm, 0, blas32.General{Rows: k, Cols: k, Stride: k, Data: g})
	}
	out := make([]float64, k*k)
	for i, v := range g {
		out[i] = float64(v)
	}
	for a := range k {
		out[a*k+a] += lambda
	}
	return out
}

// cgBlock is how many rows solveSide moves through conjugate gradient
// together: the products with FᵀF + λI of a whole block are one matrix
// multiplication, several times faster than one product per row.
const cgBlock = 256

// solveSide updates the factors of every row of m (rows of `solve`) given
// the fixed factors of its columns, by CGSteps of conjugate gradient on
// (FᵀF + λI + Σ (c−1) f fᵀ) x = Σ c f, warm-started from the current x.
// Rows are handled in blocks of cgBlock, in lockstep: the dense part of
// A·p is a block matrix product, the sparse part (the row's own columns) a
// few dot products and axpys per row.
func solveSide(m *Matrix, solve, fixed []float32, k int, p ALSParams, workers int) {
	g64 := gramOf(fixed, k, p.Lambda)
	g := blas32.General{Rows: k, Cols: k, Stride: k, Data: make([]float32, k*k)}
	for i, v := range g64 {
		g.Data[i] = float32(v)
	}
	var wg sync.WaitGroup
	next := make(chan int, 64)
	for range max(1, workers) {
		wg.Go(func() {
			r := make([]float32, cgBlock*k)
			pp := make([]float32, cgBlock*k)
			ap := make([]float32, cgBlock*k)
			rs := make([]float32, cgBlock)
			for lo := range next {
				hi := min(m.Rows, lo+cgBlock)
				cgSolveBlock(m, solve, fixed, g, k, p, lo, hi, r, pp, ap, rs)
			}
		})
	}
	for lo := 0; lo < m.Rows; lo += cgBlock {
		next <- lo
	}
	close(next)
	wg.Wait()
}

// cgSolveBlock runs conjugate gradient for rows lo..hi of m.
func cgSolveBlock(m *Matrix, solve, fixed []float32, g blas32.General, k int, p ALSParams, lo, hi int, r, pp, ap, rs []float32) {
	n := hi - lo
	x := blas32.General{Rows: n, Cols: k, Stride: k, Data: solve[lo*k : hi*k]}
	rm := blas32.General{Rows: n, Cols: k, Stride: k, Data: r[:n*k]}
	pm := blas32.General{Rows: n, Cols: k, Stride: k, Data: pp[:n*k]}
	am := blas32.General{Rows: n, Cols: k, Stride: k, Data: ap[:n*k]}
	// sparse adds Σ (c−1)(f·v) f over row u's columns to out (the part of
	// A·v that depends on the row), and with b also Σ c f (b − A x's
	// sparse part, for the first residual).
	sparse := func(u int, v, out []float32, withB bool) {
		cols, vals := m.Row(lo + u)
		for a, c := range cols {
			f := fixed[int(c)*k : (int(c)+1)*k]
			conf := 1 + p.Alpha*vals[a]
			w := -(conf - 1) * dot(f, v)
			if withB {
				w += conf
			} else {
				w = -w
			}
			axpy(w, f, out)
		}
	}
	// r = b − A x
	blas32.Gemm(blas.NoTrans, blas.NoTrans, -1, x, g, 0, rm)
	for u := range n {
		if m.Ptr[lo+u+1] == m.Ptr[lo+u] {
			clear(x.Data[u*k : (u+1)*k])
			clear(r[u*k : (u+1)*k])
			rs[u] = 0
			continue
		}
		sparse(u, x.Data[u*k:(u+1)*k], r[u*k:(u+1)*k], true)
		rs[u] = dot(r[u*k:(u+1)*k], r[u*k:(u+1)*k])
	}
	copy(pp[:n*k], r[:n*k])
	for range p.CGSteps {
		blas32.Gemm(blas.NoTrans, blas.NoTrans, 1, pm, g, 0, am)
		for u := range n {
			if rs[u] < 1e-10 {
				continue // converged (or no columns): leave the row as it is
			}
			pu, au, ru := pp[u*k:(u+1)*k], ap[u*k:(u+1)*k], r[u*k:(u+1)*k]
			sparse(u, pu, au, false)
			pap := dot(pu, au)
			if pap <= 0 {
				rs[u] = 0
				continue
			}
			alpha := rs[u] / pap
			axpy(alpha, pu, x.Data[u*k:(u+1)*k])
			axpy(-alpha, au, ru)
			rsNew := dot(ru, ru)
			beta := rsNew / rs[u]
			for i := range pu {
				pu[i] = ru[i] + beta*pu[i]
			}
			rs[u] = rsNew
		}
	}
}

// dot is the inner product of two equally long vectors (blas32, which uses
// SIMD on amd64).
func dot(a, b []float32) float32 {
	return blas32.Dot(blas32.Vector{N: len(a), Inc: 1, Data: a}, blas32.Vector{N: len(a), Inc: 1, Data: b})
}

// woodburyMax is the most items a fold-in solves by the Woodbury
// identity; beyond it the k × k system is factorised directly.
const woodburyMax = 32

// alsScratch is one fold-in's working memory.
type alsScratch struct {
	a, b, tmp []float64 // k × k, k, k
	yu, zt    []float64 // woodburyMax × k
	sm        []float64 // woodburyMax × woodburyMax
	t         []float64 // woodburyMax
	x         []float32
}

func newALSScratch(k int) *alsScratch {
	return &alsScratch{a: make([]float64, k*k), b: make([]float64, k), tmp: make([]float64, k),
		yu: make([]float64, woodburyMax*k), zt: make([]float64, woodburyMax*k), sm: make([]float64, woodburyMax*woodburyMax),
		t: make([]float64, woodburyMax), x: make([]float32, k)}
}

// inverse is (YᵀY + λI)⁻¹, computed once per model.
func (m *ALS) inverse() []float64 {
	m.invOnce.Do(func() {
		k := m.K
		var chol mat.Cholesky
		if !chol.Factorize(mat.NewSymDense(k, slices.Clone(m.YtY))) {
			return // not positive definite: fold-ins take the direct path
		}
		var inv mat.SymDense
		if chol.InverseTo(&inv) != nil {
			return
		}
		m.inv = make([]float64, k*k)
		for i := range k {
			for j := range k {
				m.inv[i*k+j] = inv.At(i, j)
			}
		}
	})
	return m.inv
}

// foldIn solves the player's factors exactly:
// (YᵀY + λI + Σ (c−1) y yᵀ) x = Σ c y over the player's items.
// G = YᵀY + λI is the same for every player, so with few items the system
// is a low-rank update of it and the Woodbury identity solves it in
// O(m·k²) from G⁻¹ (computed once) instead of a k³ factorisation:
// with U the player's m item factors and D = diag(c−1),
// x = G⁻¹b − Z (D⁻¹ + U Z)⁻¹ Zᵀb where Z = G⁻¹Uᵀ.
func (m *ALS) foldIn(q query, s *alsScratch) []float32 {
	k, n := m.K, len(q.items)
	clear(s.b)
	for j, i := range q.items {
		y := m.Y[int(i)*k : (int(i)+1)*k]
		conf := 1 + float64(m.Alpha*q.vals[j])
		for a := range k {
			s.b[a] += conf * float64(y[a])
		}
	}
	inv := m.inverse()
	if n == 0 || n > woodburyMax || inv == nil || m.Alpha <= 0 {
		return m.foldInDirect(q, s)
	}
	for j, i := range q.items {
		y := m.Y[int(i)*k : (int(i)+1)*k]
		for a := range k {
			s.yu[j*k+a] = float64(y[a])
		}
	}
	g := blas64.General{Rows: k, Cols: k, Stride: k, Data: inv}
	u := blas64.General{Rows: n, Cols: k, Stride: k, Data: s.yu[:n*k]}
	z := blas64.General{Rows: n, Cols: k, Stride: k, Data: s.zt[:n*k]}
	sm := blas64.General{Rows: n, Cols: n, Stride: n, Data: s.sm[:n*n]}
	blas64.Gemm(blas.NoTrans, blas.NoTrans, 1, u, g, 0, z) // Zᵀ = U G⁻¹
	blas64.Gemm(blas.NoTrans, blas.Trans, 1, u, z, 0, sm)  // U Z
	for j := range n {
		sm.Data[j*n+j] += 1 / float64(m.Alpha*q.vals[j]) // D⁻¹
	}
	bv := blas64.Vector{N: k, Inc: 1, Data: s.b}
	gb := blas64.Vector{N: k, Inc: 1, Data: s.tmp}
	blas64.Gemv(blas.NoTrans, 1, g, bv, 0, gb) // G⁻¹ b
	t := blas64.Vector{N: n, Inc: 1, Data: s.t[:n]}
	blas64.Gemv(blas.NoTrans, 1, z, bv, 0, t) // Zᵀ b
	if !cholSolve(sm.Data, t.Data, n) {
		return m.foldInDirect(q, s)
	}
	blas64.Gemv(blas.Trans, -1, z, t, 1, gb) // G⁻¹b − Z w
	for a := range k {
		s.x[a] = float32(gb.Data[a])
	}
	return s.x
}

// foldInDirect factorises the player's k × k system (s.b holds Σ c y).
func (m *ALS) foldInDirect(q query, s *alsScratch) []float32 {
	k := m.K
	copy(s.a, m.YtY)
	for n, i := range q.items {
		y := m.Y[int(i)*k : (int(i)+1)*k]
		w0 := float64(m.Alpha * q.vals[n]) // c − 1
		for a := range k {
			w := w0 * float64(y[a])
			row := s.a[a*k:]
			for b := a; b < k; b++ {
				row[b] += w * float64(y[b])
			}
		}
	}
	z := s.tmp
	copy(z, s.b)
	// Only the upper triangle was filled; mirror it for cholSolve.
	for a := range k {
		for b := a + 1; b < k; b++ {
			s.a[b*k+a] = s.a[a*k+b]
		}
	}
	if !cholSolve(s.a, z, k) {
		clear(s.x)
		return s.x
	}
	for i := range k {
		s.x[i] = float32(z[i])
	}
	return s.x
}

// cholSolve solves A x = b in place (b becomes x) for a symmetric positive
// definite n × n row-major A, which it overwrites with its Cholesky
// factor; false if A is not positive definite.
func cholSolve(a, b []float64, n int) bool {
	for j := range n {
		d := a[j*n+j]
		for p := range j {
			d -= a[p*n+j] * a[p*n+j]
		}
		if !(d > 0) {
			return false
		}
		d = math.Sqrt(d)
		a[j*n+j] = d
		for i := j + 1; i < n; i++ {
			v := a[j*n+i]
			for p := range j {
				v -= a[p*n+j] * a[p*n+i]
			}
			a[j*n+i] = v / d
		}
	}
	for i := range n { // Uᵀ z = b
		v := b[i]
		for p := range i {
			v -= a[p*n+i] * b[p]
		}
		b[i] = v / a[i*n+i]
	}
	for i := n - 1; i >= 0; i-- { // U x = z
		v := b[i]
		for p := i + 1; p < n; p++ {
			v -= a[i*n+p] * b[p]
		}
		b[i] = v / a[i*n+i]
	}
	return true
}

func (m *ALS) scores(q query, out []float32) {
	s, _ := m.scratch.Get().(*alsScratch)
	if s == nil || len(s.x) != m.K {
		s = newALSScratch(m.K)
	}
	x := m.foldIn(q, s)
	k := m.K
	blas32.Gemv(blas.NoTrans, 1, blas32.General{Rows: m.N, Cols: k, Stride: k, Data: m.Y}, blas32.Vector{N: k, Inc: 1, Data: x},
		0, blas32.Vector{N: m.N, Inc: 1, Data: out[:m.N]})
	m.scratch.Put(s)
}
