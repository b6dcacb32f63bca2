package sql

import (
	stdsql "database/sql"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// textValue turns a value of the binary protocol (prepared statements)
// into the text the server sends for it in the text protocol, which is
// what Dovecot's mysql driver reads: NULL stays NULL, strings, DECIMAL,
// dates and times arrive as text already, integers are decimal, and
// FLOAT/DOUBLE follow the server's own formatting (floatText).
func textValue(v any, ct *stdsql.ColumnType) stdsql.NullString {
	switch x := v.(type) {
	case nil:
		return stdsql.NullString{}
	case []byte:
		return stdsql.NullString{String: string(x), Valid: true}
	case string:
		return stdsql.NullString{String: x, Valid: true}
	case int64:
		return stdsql.NullString{String: strconv.FormatInt(x, 10), Valid: true}
	case uint64:
		return stdsql.NullString{String: strconv.FormatUint(x, 10), Valid: true}
	case float32:
		return stdsql.NullString{String: floatText(float64(x), 6, floatScale(ct)), Valid: true}
	case float64:
		return stdsql.NullString{String: floatText(x, -1, floatScale(ct)), Valid: true}
	case time.Time: // only with parseTime, which is off
		return stdsql.NullString{String: x.Format("2006-01-02 15:04:05.999999"), Valid: true}
	case bool:
		if x {
			return stdsql.NullString{String: "1", Valid: true}
		}
		return stdsql.NullString{String: "0", Valid: true}
	}
	return stdsql.NullString{String: fmt.Sprint(v), Valid: true}
}

// floatScale is the fixed number of decimals of a FLOAT(M,D)/DOUBLE(M,D)
// column, or -1 for a plain FLOAT/DOUBLE.
func floatScale(ct *stdsql.ColumnType) int {
	if ct == nil {
		return -1
	}
	if _, scale, ok := ct.DecimalSize(); ok && scale >= 0 && scale < 31 {
		return int(scale)
	}
	return -1
}

// floatText formats f as MariaDB's text protocol does (my_gcvt, checked
// against 10.11 in TestMariaDB/values): with a fixed scale, that many
// decimals; otherwise the shortest digits (sig significant digits for
// FLOAT: 6), in fixed notation while the decimal point is within 15
// places of the first digit (1000000, 0.000000000000001) and as
// mantissa-e-exponent beyond (1e15, 1.5e-16, 1.2345678901234568e17).
func floatText(f float64, sig, scale int) string {
	if scale >= 0 {
		return strconv.FormatFloat(f, 'f', scale, 64)
	}
	if f == 0 || math.IsNaN(f) || math.IsInf(f, 0) {
		return strconv.FormatFloat(f, 'g', -1, 64)
	}
	prec := -1
	if sig > 0 {
		prec = sig - 1
	}
	e := strconv.FormatFloat(math.Abs(f), 'e', prec, 64) // d.ddde±XX
	mant, exp, _ := strings.Cut(e, "e")
	x, _ := strconv.Atoi(exp)
	digits := strings.TrimRight(strings.Replace(mant, ".", "", 1), "0")
	if digits == "" {
		digits = "0"
	}
	decpt := x + 1 // digits before the decimal point
	var b strings.Builder
	if f < 0 {
		b.WriteByte('-')
	}
	const maxDecpt = 15 // MAX_DECPT_FOR_F_FORMAT (DBL_DIG)
	switch {
	case decpt > maxDecpt || decpt <= -maxDecpt:
		b.WriteByte(digits[0])
		if len(digits) > 1 {
			b.WriteByte('.')
			b.WriteString(digits[1:])
		}
		b.WriteByte('e')
		b.WriteString(strconv.Itoa(x))
	case decpt <= 0:
		b.WriteString("0.")
		b.WriteString(strings.Repeat("0", -decpt))
		b.WriteString(digits)
	case len(digits) <= decpt:
		b.WriteString(digits)
		b.WriteString(strings.Repeat("0", decpt-len(digits)))
	default:
		b.WriteString(digits[:decpt])
		b.WriteByte('.')
		b.WriteString(digits[decpt:])
	}
	return b.String()
}
