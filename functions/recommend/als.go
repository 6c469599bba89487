package recommend

import (
	"math"
	"math/rand/v2"
	"sync"
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
	return &ALS{N: x.Cols, K: k, Y: items, YtY: gramOf(items, k, p.Lambda, workers), Alpha: p.Alpha, Lambda: p.Lambda}
}

// gramOf returns FᵀF + λI for factors F (rows × k).
func gramOf(f []float32, k int, lambda float64, workers int) []float64 {
	rows := len(f) / k
	workers = max(1, min(workers, rows))
	parts := make([][]float64, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			g := make([]float64, k*k)
			for r := w; r < rows; r += workers {
				v := f[r*k : (r+1)*k]
				for a := range k {
					va := float64(v[a])
					row := g[a*k:]
					for b := a; b < k; b++ {
						row[b] += va * float64(v[b])
					}
				}
			}
			parts[w] = g
		})
	}
	wg.Wait()
	g := parts[0]
	for _, p := range parts[1:] {
		for i, v := range p {
			g[i] += v
		}
	}
	for a := range k {
		for b := a + 1; b < k; b++ {
			g[b*k+a] = g[a*k+b]
		}
		g[a*k+a] += lambda
	}
	return g
}

// solveSide updates the factors of every row of m (rows of `solve`) given
// the fixed factors of its columns, by CGSteps of conjugate gradient on
// (FᵀF + λI + Σ (c−1) f fᵀ) x = Σ c f, warm-started from the current x.
func solveSide(m *Matrix, solve, fixed []float32, k int, p ALSParams, workers int) {
	g64 := gramOf(fixed, k, p.Lambda, workers)
	g := make([]float32, len(g64))
	for i, v := range g64 {
		g[i] = float32(v)
	}
	var wg sync.WaitGroup
	next := make(chan [2]int, 64)
	for range max(1, workers) {
		wg.Go(func() {
			rr := make([]float32, k)
			pp := make([]float32, k)
			ap := make([]float32, k)
			for span := range next {
				for u := span[0]; u < span[1]; u++ {
					cols, vals := m.Row(u)
					xu := solve[u*k : (u+1)*k]
					if len(cols) == 0 {
						clear(xu)
						continue
					}
					// r = b − A x
					matVec(g, xu, rr, k)
					for i := range rr {
						rr[i] = -rr[i]
					}
					for a, c := range cols {
						y := fixed[int(c)*k : (int(c)+1)*k]
						conf := 1 + p.Alpha*vals[a]
						d := dot(y, xu)
						axpy(conf-(conf-1)*d, y, rr)
					}
					copy(pp, rr)
					rs := dot(rr, rr)
					for range p.CGSteps {
						if rs < 1e-10 {
							break
						}
						matVec(g, pp, ap, k)
						for a, c := range cols {
							y := fixed[int(c)*k : (int(c)+1)*k]
							conf := 1 + p.Alpha*vals[a]
							axpy((conf-1)*dot(y, pp), y, ap)
						}
						alpha := rs / dot(pp, ap)
						axpy(alpha, pp, xu)
						axpy(-alpha, ap, rr)
						rsNew := dot(rr, rr)
						beta := rsNew / rs
						for i := range pp {
							pp[i] = rr[i] + beta*pp[i]
						}
						rs = rsNew
					}
				}
			}
		})
	}
	const chunk = 256
	for lo := 0; lo < m.Rows; lo += chunk {
		next <- [2]int{lo, min(m.Rows, lo+chunk)}
	}
	close(next)
	wg.Wait()
}

// matVec sets out = G·v for a k × k row-major G.
func matVec(g, v, out []float32, k int) {
	for a := range k {
		out[a] = dot(g[a*k:(a+1)*k], v)
	}
}

// dot is the inner product of two equally long vectors.
func dot(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return s0 + s1 + s2 + s3
}

// alsScratch is one fold-in's working memory.
type alsScratch struct {
	a   []float64
	b   []float64
	x   []float32
	tmp []float64
}

// foldIn solves the player's factors exactly:
// (YᵀY + λI + Σ (c−1) y yᵀ) x = Σ c y over the player's items.
func (m *ALS) foldIn(q query, s *alsScratch) []float32 {
	k := m.K
	copy(s.a, m.YtY)
	clear(s.b)
	for n, i := range q.items {
		y := m.Y[int(i)*k : (int(i)+1)*k]
		conf := 1 + float64(m.Alpha*q.vals[n])
		for a := range k {
			ya := float64(y[a])
			s.b[a] += conf * ya
			w := (conf - 1) * ya
			row := s.a[a*k:]
			for b := a; b < k; b++ {
				row[b] += w * float64(y[b])
			}
		}
	}
	// In-place Cholesky of the upper triangle (A = UᵀU), then two solves.
	a := s.a
	for j := range k {
		d := a[j*k+j]
		for p := range j {
			d -= a[p*k+j] * a[p*k+j]
		}
		if d <= 0 {
			clear(s.x)
			return s.x
		}
		d = math.Sqrt(d)
		a[j*k+j] = d
		for i := j + 1; i < k; i++ {
			v := a[j*k+i]
			for p := range j {
				v -= a[p*k+j] * a[p*k+i]
			}
			a[j*k+i] = v / d
		}
	}
	z := s.tmp
	for i := range k { // Uᵀ z = b
		v := s.b[i]
		for p := range i {
			v -= a[p*k+i] * z[p]
		}
		z[i] = v / a[i*k+i]
	}
	for i := k - 1; i >= 0; i-- { // U x = z
		v := z[i]
		for p := i + 1; p < k; p++ {
			v -= a[i*k+p] * z[p]
		}
		z[i] = v / a[i*k+i]
	}
	for i := range k {
		s.x[i] = float32(z[i])
	}
	return s.x
}

func (m *ALS) scores(q query, out []float32) {
	s, _ := m.scratch.Get().(*alsScratch)
	if s == nil || len(s.x) != m.K {
		k := m.K
		s = &alsScratch{a: make([]float64, k*k), b: make([]float64, k), x: make([]float32, k), tmp: make([]float64, k)}
	}
	x := m.foldIn(q, s)
	k := m.K
	for i := range m.N {
		out[i] = dot(m.Y[i*k:(i+1)*k], x)
	}
	m.scratch.Put(s)
}
