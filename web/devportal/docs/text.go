package docs

import "strings"

// maxTextLen bounds one description so a huge string cannot blow up a page.
const maxTextLen = 16 << 10

// parseText splits a CommonMark-ish description into paragraphs, bullet
// lists and fenced code blocks. Everything else (emphasis, links, inline
// HTML) stays as literal text; the templates escape it.
func parseText(s string) Text {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil
	}
	if len(s) > maxTextLen {
		s = clip(s, maxTextLen)
	}
	if !strings.ContainsAny(s, "\n") && !strings.HasPrefix(s, "```") && !isBullet(s) {
		return Text{{Kind: Paragraph, Text: s}}
	}
	var (
		out   Text
		para  []string
		items []string
		code  []string
		fence bool
	)
	flushPara := func() {
		if len(para) > 0 {
			out = append(out, Block{Kind: Paragraph, Text: strings.Join(para, " ")})
			para = nil
		}
	}
	flushList := func() {
		if len(items) > 0 {
			out = append(out, Block{Kind: List, Items: items})
			items = nil
		}
	}
	for _, line := range strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n") {
		trimmed := strings.TrimSpace(line)
		if fence {
			if strings.HasPrefix(trimmed, "```") {
				out = append(out, Block{Kind: Code, Text: strings.Join(code, "\n")})
				code, fence = nil, false
				continue
			}
			code = append(code, line)
			continue
		}
		switch {
		case strings.HasPrefix(trimmed, "```"):
			flushPara()
			flushList()
			fence = true
		case trimmed == "":
			flushPara()
			flushList()
		case isBullet(trimmed):
			flushPara()
			items = append(items, strings.TrimSpace(trimmed[2:]))
		case len(items) > 0 && line != trimmed:
			// An indented continuation of the last list item.
			items[len(items)-1] += " " + trimmed
		default:
			flushList()
			para = append(para, trimmed)
		}
	}
	if fence && len(code) > 0 {
		out = append(out, Block{Kind: Code, Text: strings.Join(code, "\n")})
	}
	flushPara()
	flushList()
	return out
}

func isBullet(s string) bool {
	return len(s) > 2 && (s[0] == '-' || s[0] == '*' || s[0] == '+') && s[1] == ' '
}
