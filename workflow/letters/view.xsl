<?xml version="1.0" encoding="UTF-8"?>
<!--
  ezd: a readable, printable HTML page for a letter in the structure of the ePUAP form
  "Pismo ogólne do podmiotu publicznego" (see workflow/letters/letter.py). Run only through
  workflow.letters.view, which parses the letter with the hardened parser, validates it and
  applies this stylesheet with all file and network access denied.

  Rules kept here: every value from the letter goes out through xsl:value-of or an attribute
  value template (escaped); no disable-output-escaping; nothing from the letter becomes a link,
  a style or a script; no document(), xsl:include or xsl:import.
-->
<xsl:stylesheet version="1.0"
                xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
                xmlns:wnio="http://crd.gov.pl/wzor/2017/10/24/4566/"
                xmlns:meta="http://crd.gov.pl/xml/schematy/meta/2009/11/16/"
                xmlns:str="http://crd.gov.pl/xml/schematy/struktura/2009/11/16/"
                xmlns:adr="http://crd.gov.pl/xml/schematy/adres/2009/11/09/"
                xmlns:inst="http://crd.gov.pl/xml/schematy/instytucja/2009/11/16/"
                xmlns:ds="http://www.w3.org/2000/09/xmldsig#"
                xmlns:exs="http://exslt.org/strings"
                exclude-result-prefixes="wnio meta str adr inst ds exs">

  <xsl:output method="html" encoding="UTF-8" indent="yes" doctype-system="about:legacy-compat"/>

  <!-- ISO 639-1 code of the letter's language, passed by view.py. -->
  <xsl:param name="jezyk" select="'pl'"/>
  <!-- Decoded sizes in bytes of the attachments, in document order, separated by spaces (-1 for
       a referenced file), passed by view.py, which has decoded them: measuring megabytes of
       base64 here would be slow. -->
  <xsl:param name="rozmiary" select="''"/>
  <!-- For each ds:Signature, the CN of its certificate (decoded by view.py) or "-", one per line;
       used when the signature has no ds:X509SubjectName. -->
  <xsl:param name="podpisujacy" select="''"/>

  <xsl:decimal-format name="pl" decimal-separator="," grouping-separator="&#160;"/>

  <xsl:template match="/">
    <xsl:apply-templates select="wnio:Dokument"/>
  </xsl:template>

  <xsl:template match="wnio:Dokument">
    <xsl:variable name="dane" select="wnio:DaneDokumentu"/>
    <xsl:variable name="tresc" select="wnio:TrescDokumentu"/>
    <xsl:variable name="znak"
                  select="$dane/str:Naglowek/meta:Identyfikator[@typIdentyfikatora='znakSprawy']/meta:Wartosc"/>
    <xsl:variable name="waszZnak"
                  select="$dane/str:Naglowek/meta:Identyfikator[@typIdentyfikatora='znakSprawyAdresata']/meta:Wartosc"/>
    <xsl:variable name="data" select="$dane/meta:Data[@typDaty='stworzony']/meta:Czas"/>
    <html lang="pl">
      <head>
        <meta name="viewport" content="width=device-width, initial-scale=1"/>
        <title>
          <xsl:text>Pismo </xsl:text>
          <xsl:value-of select="$znak"/>
          <xsl:text>: </xsl:text>
          <xsl:value-of select="$tresc/wnio:Tytul"/>
        </title>
        <style>
          :root { color-scheme: light; }
          body {
            margin: 0;
            background: #eceff1;
            color: #111;
            font-family: "Segoe UI", "DejaVu Sans", Arial, sans-serif;
            font-size: 16px;
            line-height: 1.5;
          }
          main {
            box-sizing: border-box;
            max-width: 210mm;
            margin: 2rem auto;
            padding: 18mm 20mm;
            background: #fff;
            box-shadow: 0 1px 4px rgba(0, 0, 0, 0.25);
          }
          .naglowek {
            display: grid;
            grid-template-columns: 1fr 1fr;
            gap: 1rem 2rem;
            align-items: start;
          }
          .nadawca { grid-column: 1; grid-row: 1; }
          .miejsce-data { grid-column: 2; grid-row: 1; margin: 0; text-align: right; }
          .znaki { grid-column: 1; grid-row: 2; margin: 0; }
          .adresat { grid-column: 2; grid-row: 2; margin-top: 1.5rem; font-weight: 600; }
          address { font-style: normal; }
          .nazwa { font-weight: 700; }
          .identyfikatory { margin: 0.25rem 0 0; font-size: 0.875rem; color: #333; }
          .identyfikatory span { display: block; }
          .adresat .identyfikatory { font-weight: 400; }
          .znaki dt { display: inline; font-weight: 600; }
          .znaki dd { display: inline; margin: 0 0 0 0.25rem; }
          .znaki dd::after { content: ""; display: block; }
          h1 { font-size: 1.125rem; margin: 2.5rem 0 1.25rem; }
          h1 .etykieta { font-weight: 400; }
          h2 { font-size: 1rem; margin: 2rem 0 0.5rem; }
          .tresc p { margin: 0 0 0.9em; white-space: pre-line; text-align: justify; }
          .zalaczniki ol { margin: 0; padding-left: 1.5rem; }
          .zalaczniki li { margin-bottom: 0.35rem; }
          .opis-pliku, .skrot { color: #333; font-size: 0.875rem; }
          .skrot code, .odwolanie { word-break: break-all; }
          .podpis { margin-top: 2.5rem; padding-top: 0.75rem; border-top: 1px solid #999; }
          .podpis p { margin: 0.25rem 0; }
          .uwaga { font-size: 0.875rem; color: #333; }
          .sr-only {
            position: absolute; width: 1px; height: 1px; margin: -1px; padding: 0;
            overflow: hidden; clip: rect(0, 0, 0, 0); white-space: nowrap; border: 0;
          }
          @page { size: A4; margin: 20mm 18mm; }
          @media print {
            body { background: #fff; font-size: 11pt; line-height: 1.4; }
            main { max-width: none; margin: 0; padding: 0; box-shadow: none; }
            h1, h2 { break-after: avoid; page-break-after: avoid; }
            .naglowek, .zalaczniki li, .podpis { break-inside: avoid; page-break-inside: avoid; }
          }
          @media screen and (max-width: 40rem) {
            main { margin: 0; padding: 1rem; }
            .naglowek { grid-template-columns: 1fr; }
            .nadawca, .miejsce-data, .znaki, .adresat { grid-column: 1; grid-row: auto; }
            .miejsce-data { text-align: left; }
          }
        </style>
      </head>
      <body>
        <main>
          <article aria-labelledby="tytul">
            <header class="naglowek">
              <section class="nadawca" aria-labelledby="h-nadawca">
                <h2 id="h-nadawca" class="sr-only">Nadawca</h2>
                <xsl:apply-templates select="$dane/str:Nadawcy/meta:Podmiot/inst:Instytucja"/>
              </section>
              <p class="miejsce-data">
                <span class="sr-only">Miejsce i data: </span>
                <xsl:value-of select="$tresc/wnio:MiejscowoscDokumentu"/>
                <xsl:text>, </xsl:text>
                <time datetime="{$data}">
                  <xsl:call-template name="data-pl">
                    <xsl:with-param name="iso" select="string($data)"/>
                  </xsl:call-template>
                </time>
              </p>
              <dl class="znaki">
                <dt>Znak sprawy:</dt>
                <dd><xsl:value-of select="$znak"/></dd>
                <xsl:if test="$waszZnak">
                  <dt>Wasz znak:</dt>
                  <dd><xsl:value-of select="$waszZnak"/></dd>
                </xsl:if>
              </dl>
              <section class="adresat" aria-labelledby="h-adresat">
                <h2 id="h-adresat" class="sr-only">Adresat</h2>
                <xsl:apply-templates select="$dane/str:Adresaci/meta:Podmiot/inst:Instytucja"/>
              </section>
            </header>

            <h1 id="tytul" lang="{$jezyk}">
              <span class="etykieta" lang="pl">Dotyczy: </span>
              <xsl:value-of select="$tresc/wnio:Tytul"/>
            </h1>

            <section class="tresc" aria-labelledby="h-tresc" lang="{$jezyk}">
              <h2 id="h-tresc" class="sr-only" lang="pl">Treść pisma</h2>
              <xsl:for-each select="$tresc/wnio:Informacje/wnio:Informacja">
                <p><xsl:value-of select="."/></p>
              </xsl:for-each>
            </section>

            <xsl:apply-templates select="$tresc/str:Zalaczniki"/>

            <footer class="podpis">
              <h2 class="sr-only">Podpis</h2>
              <xsl:choose>
                <xsl:when test="ds:Signature">
                  <p><strong>Dokument podpisany elektronicznie</strong></p>
                  <xsl:variable name="listaPodpisujacych"
                                select="exs:tokenize($podpisujacy, '&#10;')"/>
                  <xsl:for-each select="ds:Signature">
                    <xsl:variable name="poz" select="position()"/>
                    <xsl:call-template name="podpis">
                      <xsl:with-param name="zCertyfikatu"
                                      select="string($listaPodpisujacych[$poz])"/>
                    </xsl:call-template>
                  </xsl:for-each>
                  <p class="uwaga">Ten podgląd nie weryfikuje podpisu; jego ważność sprawdza
                    system EZD przy rejestracji pisma.</p>
                </xsl:when>
                <xsl:otherwise>
                  <p class="uwaga">Dokument nie zawiera podpisu elektronicznego.</p>
                </xsl:otherwise>
              </xsl:choose>
            </footer>
          </article>
        </main>
      </body>
    </html>
  </xsl:template>

  <!-- A party (sender or addressee). -->
  <xsl:template match="inst:Instytucja">
    <address>
      <span class="nazwa"><xsl:value-of select="inst:NazwaInstytucji"/></span>
      <xsl:apply-templates select="adr:Adres"/>
      <xsl:if test="adr:Kontakt/adr:Email">
        <br/>
        <xsl:text>e-mail: </xsl:text>
        <xsl:value-of select="adr:Kontakt/adr:Email"/>
      </xsl:if>
    </address>
    <xsl:variable name="id" select="inst:IdInstytucji"/>
    <xsl:if test="$id/*">
      <p class="identyfikatory">
        <xsl:for-each select="$id/inst:InnyIdentyfikator[inst:TypIdentyfikatora='kodJednostki']">
          <span>
            <xsl:text>Kod jednostki: </xsl:text>
            <xsl:value-of select="inst:WartoscIdentyfikatora"/>
          </span>
        </xsl:for-each>
        <xsl:for-each select="$id/inst:REGON">
          <span>
            <xsl:text>REGON: </xsl:text>
            <xsl:value-of select="."/>
          </span>
        </xsl:for-each>
        <xsl:for-each select="$id/inst:KRS">
          <span>
            <xsl:text>KRS: </xsl:text>
            <xsl:value-of select="."/>
          </span>
        </xsl:for-each>
      </p>
    </xsl:if>
  </xsl:template>

  <xsl:template match="adr:Adres">
    <xsl:if test="adr:Ulica or adr:Budynek or adr:Lokal">
      <br/>
      <xsl:value-of select="adr:Ulica"/>
      <xsl:if test="adr:Ulica and adr:Budynek">
        <xsl:text> </xsl:text>
      </xsl:if>
      <xsl:value-of select="adr:Budynek"/>
      <xsl:if test="adr:Lokal">
        <xsl:if test="adr:Ulica or adr:Budynek">/</xsl:if>
        <xsl:value-of select="adr:Lokal"/>
      </xsl:if>
    </xsl:if>
    <xsl:if test="adr:KodPocztowy or adr:Miejscowosc">
      <br/>
      <xsl:value-of select="adr:KodPocztowy"/>
      <xsl:if test="adr:KodPocztowy and adr:Miejscowosc">
        <xsl:text> </xsl:text>
      </xsl:if>
      <xsl:value-of select="adr:Miejscowosc"/>
    </xsl:if>
    <xsl:if test="adr:Uwagi">
      <xsl:call-template name="wiersze">
        <xsl:with-param name="tekst" select="string(adr:Uwagi)"/>
      </xsl:call-template>
    </xsl:if>
  </xsl:template>

  <!-- Each line of a multi-line text after a line break (the schema limits it to 2100 chars). -->
  <xsl:template name="wiersze">
    <xsl:param name="tekst"/>
    <br/>
    <xsl:choose>
      <xsl:when test="contains($tekst, '&#10;')">
        <xsl:value-of select="substring-before($tekst, '&#10;')"/>
        <xsl:call-template name="wiersze">
          <xsl:with-param name="tekst" select="substring-after($tekst, '&#10;')"/>
        </xsl:call-template>
      </xsl:when>
      <xsl:otherwise>
        <xsl:value-of select="$tekst"/>
      </xsl:otherwise>
    </xsl:choose>
  </xsl:template>

  <xsl:template match="str:Zalaczniki">
    <section class="zalaczniki" aria-labelledby="h-zalaczniki">
      <h2 id="h-zalaczniki">Załączniki</h2>
      <xsl:variable name="listaRozmiarow" select="exs:tokenize($rozmiary, ' ')"/>
      <ol>
        <xsl:for-each select="str:Zalacznik">
          <xsl:variable name="poz" select="position()"/>
          <li>
            <span class="nazwa-pliku"><xsl:value-of select="@nazwaPliku"/></span>
            <xsl:text> </xsl:text>
            <span class="opis-pliku">
              <xsl:text>(</xsl:text>
              <xsl:value-of select="@format"/>
              <xsl:choose>
                <xsl:when test="@kodowanie='base64'">
                  <xsl:variable name="rozmiar" select="number($listaRozmiarow[$poz])"/>
                  <xsl:if test="$rozmiar &gt;= 0">
                    <xsl:text>, </xsl:text>
                    <xsl:call-template name="rozmiar">
                      <xsl:with-param name="bajty" select="$rozmiar"/>
                    </xsl:call-template>
                  </xsl:if>
                  <xsl:text>, w piśmie</xsl:text>
                </xsl:when>
                <xsl:otherwise>
                  <xsl:text>, plik zewnętrzny: </xsl:text>
                  <code class="odwolanie"><xsl:value-of select="str:DaneZalacznika"/></code>
                </xsl:otherwise>
              </xsl:choose>
              <xsl:text>)</xsl:text>
            </span>
            <xsl:if test="starts-with(str:OpisZalacznika, 'sha256:')">
              <br/>
              <span class="skrot">
                <xsl:text>SHA-256: </xsl:text>
                <code><xsl:value-of select="substring-after(str:OpisZalacznika, 'sha256:')"/></code>
              </span>
            </xsl:if>
          </li>
        </xsl:for-each>
      </ol>
    </section>
  </xsl:template>

  <xsl:template name="rozmiar">
    <xsl:param name="bajty"/>
    <xsl:choose>
      <xsl:when test="$bajty &lt; 1024">
        <xsl:value-of select="$bajty"/>
        <xsl:text> B</xsl:text>
      </xsl:when>
      <xsl:when test="$bajty &lt; 1048576">
        <xsl:value-of select="format-number($bajty div 1024, '0,0', 'pl')"/>
        <xsl:text> KB</xsl:text>
      </xsl:when>
      <xsl:otherwise>
        <xsl:value-of select="format-number($bajty div 1048576, '0,0', 'pl')"/>
        <xsl:text> MB</xsl:text>
      </xsl:otherwise>
    </xsl:choose>
  </xsl:template>

  <!-- Who signed and when, if the signature says so. -->
  <xsl:template name="podpis">
    <xsl:param name="zCertyfikatu" select="''"/>
    <xsl:variable name="podmiot" select="string(ds:KeyInfo/ds:X509Data/ds:X509SubjectName)"/>
    <xsl:variable name="czas" select="string(.//*[local-name()='SigningTime'])"/>
    <xsl:if test="$podmiot != ''">
      <p>
        <xsl:text>Podpisał(a): </xsl:text>
        <xsl:choose>
          <xsl:when test="contains($podmiot, 'CN=')">
            <xsl:variable name="cn" select="substring-after($podmiot, 'CN=')"/>
            <xsl:choose>
              <xsl:when test="contains($cn, ',')">
                <xsl:value-of select="substring-before($cn, ',')"/>
              </xsl:when>
              <xsl:otherwise>
                <xsl:value-of select="$cn"/>
              </xsl:otherwise>
            </xsl:choose>
          </xsl:when>
          <xsl:otherwise>
            <xsl:value-of select="$podmiot"/>
          </xsl:otherwise>
        </xsl:choose>
      </p>
    </xsl:if>
    <xsl:if test="$podmiot = '' and $zCertyfikatu != '' and $zCertyfikatu != '-'">
      <p>
        <xsl:text>Podpisał(a): </xsl:text>
        <xsl:value-of select="$zCertyfikatu"/>
      </p>
    </xsl:if>
    <xsl:if test="$czas != ''">
      <p>
        <xsl:text>Czas złożenia podpisu: </xsl:text>
        <xsl:value-of select="$czas"/>
      </p>
    </xsl:if>
  </xsl:template>

  <!-- "2026-03-14" as "14 marca 2026 r." -->
  <xsl:template name="data-pl">
    <xsl:param name="iso"/>
    <xsl:variable name="m" select="substring($iso, 6, 2)"/>
    <xsl:value-of select="number(substring($iso, 9, 2))"/>
    <xsl:text> </xsl:text>
    <xsl:choose>
      <xsl:when test="$m = '01'">stycznia</xsl:when>
      <xsl:when test="$m = '02'">lutego</xsl:when>
      <xsl:when test="$m = '03'">marca</xsl:when>
      <xsl:when test="$m = '04'">kwietnia</xsl:when>
      <xsl:when test="$m = '05'">maja</xsl:when>
      <xsl:when test="$m = '06'">czerwca</xsl:when>
      <xsl:when test="$m = '07'">lipca</xsl:when>
      <xsl:when test="$m = '08'">sierpnia</xsl:when>
      <xsl:when test="$m = '09'">września</xsl:when>
      <xsl:when test="$m = '10'">października</xsl:when>
      <xsl:when test="$m = '11'">listopada</xsl:when>
      <xsl:otherwise>grudnia</xsl:otherwise>
    </xsl:choose>
    <xsl:text> </xsl:text>
    <xsl:value-of select="substring($iso, 1, 4)"/>
    <xsl:text> r.</xsl:text>
  </xsl:template>
</xsl:stylesheet>
